package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tickfan/tickfan/internal/demofeed"
	"github.com/tickfan/tickfan/server"
)

// chromium finds the Chromium binary: $CHROMIUM, /usr/bin/chromium, or
// chromium on PATH. Without one the test is skipped, or fails under
// CI=true (scripts/setup installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium (/usr/bin/chromium, $CHROMIUM or chromium on PATH); scripts/setup installs Debian's chromium"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser starts a headless Chromium for the test, kept off the network
// beyond what the page asks for (the machine may have no internet, and
// Chromium otherwise calls Google's services), with a fresh profile.
func browser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("metrics-recording-only", true),
		// Containers often give /dev/shm 64 MiB, which Chromium outgrows.
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", chromium(t), err)
	}
	return bctx
}

// demo runs the demo feed (as tickfan serve --demo does) into the node
// until the test ends.
func demo(t *testing.T, n *node) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := demofeed.Run(ctx, demofeed.Config{Tick: 50 * time.Millisecond}, n.srv.Publish); err != nil && ctx.Err() == nil {
			t.Errorf("demo feed: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() }) // before the node's shutdown
}

// waitJS evaluates expr until it is true, or fails the test with what
// describe (another expression) says then.
func waitJS(t *testing.T, ctx context.Context, what, expr, describe string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](describe))
			t.Fatalf("%s: not within %s; the page shows %s", what, within, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// viewTopic types a topic into the viewer and views it.
func viewTopic(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("topic"), name), chromedp.Click(chromedp.ID("view"))); err != nil {
		t.Fatalf("view %s: %v", name, err)
	}
}

// evalJS evaluates expr.
func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// TestBrowserStatusPage loads the status page of a node that runs the demo
// feed in a real browser: its numbers move, its sparklines draw, and the
// topic viewer shows a book topic's publications in seq order and its
// order book (bids below asks), and a private topic's refusal.
func TestBrowserStatusPage(t *testing.T) {
	t.Parallel()
	ctx := browser(t, 60*time.Second)
	n := start(t)
	demo(t, n)
	if err := chromedp.Do(ctx, chromedp.Navigate(n.base+"/")); err != nil {
		t.Fatal(err)
	}
	const state = `document.getElementById("state").textContent + " | " + document.getElementById("viewer-state").textContent + " | " + document.getElementById("viewer-err").textContent`
	waitJS(t, ctx, "live stream", `document.getElementById("state").textContent === "live"`, state, 10*time.Second)

	// The numbers change: a demo topic's seq in the topic list grows.
	const seqOf = `Number((document.querySelector('#topics tr[data-topic="book.ETHUSDT"] td:nth-child(4)') || {}).textContent || -1)`
	waitJS(t, ctx, "book.ETHUSDT in the topic list", seqOf+` > 0`, state, 10*time.Second)
	seq1 := evalJS[float64](t, ctx, seqOf)
	waitJS(t, ctx, "topic list refreshed", seqOf+` > `+fmt.Sprint(seq1), state, 5*time.Second)
	pubsRate := evalJS[string](t, ctx, `document.getElementById("v-pubs").textContent`)
	if pubsRate == "–" || pubsRate == "0" {
		t.Errorf("publications/s shows %q while the demo feed publishes", pubsRate)
	}

	// Sparklines: the publication rate is drawn with points above the floor.
	waitJS(t, ctx, "publication sparkline",
		`(() => { const p = (document.querySelector("#spark-publications polyline").getAttribute("points") || "").trim().split(" ");
			return p.length >= 2 && p.some(xy => Number(xy.split(",")[1]) < 38); })()`, state, 10*time.Second)

	// The viewer: type a book topic; publications come with growing seqs.
	viewTopic(t, ctx, "book.BTCUSDT")
	const seqs = `[...document.querySelectorAll("#pubs-list li[data-seq]")].map(li => Number(li.dataset.seq))`
	waitJS(t, ctx, "publications of book.BTCUSDT", seqs+`.length >= 5`, state, 10*time.Second)
	first := evalJS[[]float64](t, ctx, seqs)
	for i := 1; i < len(first); i++ {
		if first[i] != first[i-1]-1 {
			t.Fatalf("publications newest first should be consecutive seqs, got %v", first)
		}
	}
	waitJS(t, ctx, "more publications", seqs+`[0] > `+fmt.Sprint(first[0]), state, 5*time.Second)

	// The book: both sides, bids from the best down, asks from the best up,
	// the best bid below the best ask.
	const prices = `(side) => [...document.querySelectorAll("#" + side + " tbody tr[data-price]")].map(tr => Number(tr.dataset.price))`
	waitJS(t, ctx, "order book", `(`+prices+`)("bids").length > 3 && (`+prices+`)("asks").length > 3`, state, 10*time.Second)
	book := evalJS[struct{ Bids, Asks []float64 }](t, ctx, `({Bids: (`+prices+`)("bids"), Asks: (`+prices+`)("asks")})`)
	for i := 1; i < len(book.Bids); i++ {
		if book.Bids[i] >= book.Bids[i-1] {
			t.Fatalf("bids not from the best down: %v", book.Bids)
		}
	}
	for i := 1; i < len(book.Asks); i++ {
		if book.Asks[i] <= book.Asks[i-1] {
			t.Fatalf("asks not from the best up: %v", book.Asks)
		}
	}
	if book.Bids[0] >= book.Asks[0] {
		t.Fatalf("best bid %v not below best ask %v", book.Bids[0], book.Asks[0])
	}

	// The node counts the page's subscription: deliveries flow.
	waitJS(t, ctx, "deliveries/s", `!["–", "0"].includes(document.getElementById("v-deliveries").textContent)`, state, 5*time.Second)

	// A private topic: the viewer shows the server's refusal.
	viewTopic(t, ctx, "priv.orders.42")
	waitJS(t, ctx, "refusal of a private topic", `document.getElementById("viewer-err").textContent.includes("error 401") || document.getElementById("viewer-err").textContent.includes("error 403")`, state, 5*time.Second)
	// Switching topics unsubscribed book.BTCUSDT: the page holds none now.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := getStatus(t, n)
		if st.Status.Subs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions after the viewer switched to a refused topic, want 0", st.Status.Subs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBrowserTopicLink: the page's address names the topic in view
// (/#topic), and a page opened at such an address views that topic.
func TestBrowserTopicLink(t *testing.T) {
	t.Parallel()
	ctx := browser(t, 60*time.Second)
	n := start(t)
	demo(t, n)
	if err := chromedp.Do(ctx, chromedp.Navigate(n.base+"/#book.ETHUSDT")); err != nil {
		t.Fatal(err)
	}
	const state = `document.getElementById("state").textContent + " | " + document.getElementById("viewer-state").textContent + " | " + location.href`
	const shown = `[...document.querySelectorAll("#pubs-list li[data-seq]")].length`
	waitJS(t, ctx, "publications of the linked topic", shown+` >= 2 && document.getElementById("topic").value === "book.ETHUSDT"`, state, 10*time.Second)
	viewTopic(t, ctx, "trade.SOLUSDT")
	if h := evalJS[string](t, ctx, `location.hash`); h != "#trade.SOLUSDT" {
		t.Fatalf("address names %q after viewing trade.SOLUSDT, want #trade.SOLUSDT", h)
	}
}

// TestBrowserOriginRefused: a node whose --allowed-origins leaves out the
// page's own origin refuses the viewer's WebSocket, and the page says so.
func TestBrowserOriginRefused(t *testing.T) {
	t.Parallel()
	ctx := browser(t, 60*time.Second)
	n := start(t, func(c *server.Config) { c.AllowedOrigins = "https://app.example.com" })
	n.publish(t, "book.x", map[string]any{"b": [][2]float64{{1, 2}}, "a": [][2]float64{{3, 4}}}, true)
	if err := chromedp.Do(ctx, chromedp.Navigate(n.base+"/")); err != nil {
		t.Fatal(err)
	}
	const state = `document.getElementById("state").textContent + " | " + document.getElementById("viewer-err").textContent`
	waitJS(t, ctx, "live stream", `document.getElementById("state").textContent === "live"`, state, 10*time.Second)
	viewTopic(t, ctx, "book.x")
	waitJS(t, ctx, "the refused upgrade explained", `document.getElementById("viewer-err").textContent.includes("--allowed-origins")`, state, 10*time.Second)
	shown := evalJS[string](t, ctx, `document.getElementById("viewer-err").textContent`)
	if !strings.Contains(shown, "could not be opened") {
		t.Fatalf("viewer error %q, want it to say the WebSocket could not be opened", shown)
	}
}

// TestBrowserRequireAuth: under --require-auth the page lists no topic and
// says why, and the viewer shows the 401 its anonymous sub gets.
func TestBrowserRequireAuth(t *testing.T) {
	t.Parallel()
	ctx := browser(t, 60*time.Second)
	n := start(t, withJWT, func(c *server.Config) { c.RequireAuth = true })
	n.publish(t, "book.closed", map[string]any{"b": [][2]float64{{1, 2}}, "a": [][2]float64{{3, 4}}}, true)
	if err := chromedp.Do(ctx, chromedp.Navigate(n.base+"/")); err != nil {
		t.Fatal(err)
	}
	const state = `document.getElementById("topics-note").textContent + " | " + document.getElementById("viewer-err").textContent`
	waitJS(t, ctx, "the topic list's reason", `document.getElementById("topics-note").textContent.includes("--require-auth")`, state, 10*time.Second)
	if rows := evalJS[int](t, ctx, `document.querySelectorAll("#topics tbody tr").length`); rows != 0 {
		t.Fatalf("%d topic rows under --require-auth, want none", rows)
	}
	viewTopic(t, ctx, "book.closed")
	waitJS(t, ctx, "the 401 explained", `document.getElementById("viewer-err").textContent.includes("error 401")`, state, 10*time.Second)
}
