package pipeline_test

import (
	"testing"

	"github.com/floridify/batchsynth/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
