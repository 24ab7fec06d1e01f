package bench

import (
	"testing"

	"github.com/floridify/batchsynth/internal/testenv"
)

func TestMain(m *testing.M) {
	ChildMain() // a child process of a multi-process benchmark never returns from here
	testenv.Main(m)
}
