package web

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/floridify/batchsynth/internal/emulator"
	"github.com/floridify/batchsynth/internal/store"
)

// chromiumPath is Debian's chromium; the test never downloads a browser of its own.
const chromiumPath = "/usr/bin/chromium"

// browser starts headless Chromium with a fresh profile. A missing browser fails the test: a skipped UI
// test would pass CI without the dashboard ever having been loaded.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s not found (%v): the dashboard test needs Debian's chromium; install it with `apt-get install -y chromium`", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // root in CI; the page is our own
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return ctx
}

// TestDashboardInBrowser signs in to the dashboard in headless Chromium, watches one job's progress move to
// done, and cancels another job with the page's button (arm, then confirm).
func TestDashboardInBrowser(t *testing.T) {
	ctx := browser(t)
	e := newEnv(t, envOptions{Workers: 1, Emulator: emulator.Config{ValidatingFor: 500 * time.Millisecond, InProgressFor: 4 * time.Second, FinalizingFor: 500 * time.Millisecond}})
	bg := context.Background()
	d := e.Fleet.Deps

	// Job B's model is held (as after OpenAI's token_limit_exceeded), so its requests wait, pending, for
	// the cancel.
	heldModel := "gpt-4.1-nano"
	if err := d.HoldModel(bg, heldModel, time.Now().Add(time.Hour), "test: keep job B waiting"); err != nil {
		t.Fatal(err)
	}
	// Disjoint words: a job follows another job's unsettled request for the same definition (whatever its
	// model), and A must not wait on B's held requests.
	subB := submission(t, sampleWords(t, 6)[4:])
	subB.Model = heldModel
	jobB, err := d.Submit(bg, subB)
	if err != nil {
		t.Fatal(err)
	}
	jobA, err := d.Submit(bg, submission(t, sampleWords(t, 4)))
	if err != nil {
		t.Fatal(err)
	}

	tctx, cancel := context.WithTimeout(ctx, 50*time.Second)
	defer cancel()
	rowA := fmt.Sprintf(`tr.job[data-job=%q]`, jobA.ID)
	rowB := fmt.Sprintf(`tr.job[data-job=%q]`, jobB.ID)
	err = chromedp.Do(tctx,
		chromedp.Navigate(e.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)), // sent to sign in first
		chromedp.SendKeys(chromedp.CSS(`#token`), testToken),
		chromedp.Click(chromedp.CSS(`#signin`)),
		chromedp.WaitVisible(chromedp.CSS(rowA)),
	)
	if err != nil {
		t.Fatalf("loading the dashboard: %v", err)
	}
	first, err := chromedp.Run(tctx, chromedp.Attributes(chromedp.CSS(rowA)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("job A first seen %s, %s/%s settled", first["data-status"], first["data-settled"], first["data-total"])
	if first["data-status"] == string(store.JobDone) {
		t.Fatalf("job A was done before the page showed it; the test cannot see progress move (slow the emulator)")
	}

	// The live section refreshes by itself: wait for A's row to turn done, with every request settled.
	if err := chromedp.Do(tctx, chromedp.WaitVisible(chromedp.CSS(rowA+`[data-status="done"]`))); err != nil {
		t.Fatalf("job A never showed done: %v", err)
	}
	last, err := chromedp.Run(tctx, chromedp.Attributes(chromedp.CSS(rowA)))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(last["data-total"]); n == 0 || last["data-settled"] != last["data-total"] {
		t.Errorf("job A done with %s/%s settled", last["data-settled"], last["data-total"])
	}

	// Cancel job B from the page: the first click arms the button, the second confirms.
	cancelBtn := rowB + ` button[data-action="cancel"]`
	err = chromedp.Do(tctx,
		chromedp.WaitVisible(chromedp.CSS(rowB+`[data-status="running"]`)),
		chromedp.Click(chromedp.CSS(cancelBtn)),
		chromedp.WaitVisible(chromedp.CSS(cancelBtn+`[data-armed="1"]`)),
		chromedp.Click(chromedp.CSS(cancelBtn)),
		chromedp.WaitVisible(chromedp.CSS(rowB+`[data-status="cancelled"]`)),
	)
	if err != nil {
		t.Fatalf("cancelling job B from the page: %v", err)
	}
	if path := os.Getenv("BATCHSYNTH_TEST_SCREENSHOT"); path != "" {
		if png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(path, png, 0o644)
		}
	}
	b, err := e.Fleet.Store.Job(bg, jobB.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != store.JobCancelled {
		t.Errorf("job B is %s in MongoDB, want cancelled", b.Status)
	}
	p, err := d.Progress(bg, jobB.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.States[store.StateCancelled] == 0 || p.States[store.StatePending] != 0 {
		t.Errorf("job B's requests after the cancel: %v", p.States)
	}
	a, err := d.Progress(bg, jobA.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Finished || a.Status != store.JobDone || a.States[store.StateSucceeded] != a.Total {
		t.Errorf("job A: %s (stored %s) %v", a.Status, a.Job.Status, a.States)
	}
}
