package synthesis

import (
	"sync"

	"github.com/pkoukk/tiktoken-go"
	tiktokenloader "github.com/pkoukk/tiktoken-go-loader"
)

// Encoding is the tokenizer of gpt-4o, gpt-4.1 and gpt-5 models.
const Encoding = "o200k_base"

var (
	encOnce sync.Once
	enc     *tiktoken.Tiktoken
	encErr  error
)

// CountTokens counts s with tiktoken's o200k_base, loaded from the BPE file shipped in the module (no network).
func CountTokens(s string) int64 {
	encOnce.Do(func() {
		tiktoken.SetBpeLoader(tiktokenloader.NewOfflineLoader())
		enc, encErr = tiktoken.GetEncoding(Encoding)
	})
	if encErr != nil {
		// The BPE file is embedded in the binary; failing to load it is a build defect, not a runtime condition.
		panic("tiktoken: " + encErr.Error())
	}
	return int64(len(enc.EncodeOrdinary(s)))
}
