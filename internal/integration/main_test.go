package integration

import (
	"flag"
	"strconv"
	"testing"

	"github.com/floridify/batchsynth/internal/testenv"
)

// parallelDefault is how many tests of this package run at once unless -parallel says otherwise. A test here
// spends most of its time waiting (polls, flush delays, backoffs, the servers), not on a core, so the default
// of one test per core leaves the machine idle; the tests share two FerretDBs (parallel).
const parallelDefault = 4

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", strconv.Itoa(parallelDefault))
	}
	testenv.Main(m)
}
