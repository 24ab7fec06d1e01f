package testenv

import (
	"fmt"
	"os"
	"testing"
)

// Main runs the package's tests, then stops the shared FerretDB and removes
// its data, and exits with the tests' status. Use it as the whole TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if err := stopSharedMongo(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
