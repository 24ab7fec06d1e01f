package testenv

import (
	"net/http/httptest"
	"testing"

	"github.com/floridify/batchsynth/internal/emulator"
)

// Emulator starts the Batch API emulator on an httptest server, closed when
// the test ends. It returns the emulator, for steering it from the test, and
// the base URL to give the OpenAI client, ending in "/v1/".
func Emulator(t testing.TB, cfg emulator.Config) (*emulator.Server, string) {
	t.Helper()
	srv := emulator.New(cfg)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, ts.URL + "/v1/"
}
