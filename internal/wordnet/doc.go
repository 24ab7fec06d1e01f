// Package wordnet reads the Princeton WordNet 3.0 database files, as Debian's
// wordnet-base package installs them under /usr/share/wordnet, and picks
// samples of real, common English words with their definitions. The samples
// feed batchsynth's examples, integration tests and cost benchmarks, in the
// project's JSONL input format (see [Entry]).
//
// The files used are index.{noun,verb,adj,adv} (each word's senses, most
// frequent first), data.{noun,verb,adj,adv} (the synsets and their glosses)
// and, when present, cntlist.rev (how often each sense was tagged in the
// semantic concordance texts), which is what makes a word count as common.
//
// WordNet 3.0 is licensed by Princeton University; anything generated from it
// must carry that licence, which [DB.License] returns.
package wordnet
