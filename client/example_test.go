package client_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/tickfan/tickfan/client"
	"github.com/tickfan/tickfan/server"
)

// The examples run against a real server that TestMain starts: memory
// mode, anonymous publishing allowed, on loopback ports the OS picks.
var (
	// serverURL is its WebSocket URL, as Config.Addr takes it.
	serverURL string
	// example is the running server; restartServer replaces it.
	example    *server.Server
	exampleCfg = server.Config{
		WSAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		AnonymousPub: ">", Loops: 1, CmdRate: 1_000_000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
)

func TestMain(m *testing.M) {
	startExampleServer()
	serverURL = "ws://" + example.WSAddr() + "/ws"
	code := m.Run()
	stopExampleServer()
	os.Exit(code)
}

func startExampleServer() {
	srv, err := server.New(exampleCfg)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		log.Fatalf("example server: %v", err)
	}
	example = srv
	exampleCfg.WSAddr, exampleCfg.TCPAddr, exampleCfg.HTTPAddr = srv.WSAddr(), srv.TCPAddr(), srv.HTTPAddr()
}

func stopExampleServer() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := example.Shutdown(ctx); err != nil {
		log.Fatalf("example server: %v", err)
	}
}

// restartServer stops the example server and starts a new one on the
// same ports. It keeps its topics in memory, so they start a new epoch.
func restartServer() {
	stopExampleServer()
	startExampleServer()
}

// publish stands for a producer: it publishes one JSON value with the
// pub command and returns where the server placed it.
func publish(topic, data string) client.Position {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: serverURL})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Publish(1, topic, []byte(data), false); err != nil {
		log.Fatal(err)
	}
	for {
		m, err := c.Next()
		if err != nil {
			log.Fatal(err)
		}
		if m.Kind == client.KindReply && m.ID == 1 {
			var pos client.Position
			if m.Err != nil || m.DecodeRes(&pos) != nil {
				log.Fatalf("publish %s: %+v", topic, m)
			}
			return pos
		}
	}
}

// A subscriber that kept its position (say, in a file) when it stopped
// starts again from it: the server sends what it missed, then live
// publications.
func ExampleSubscribe() {
	first := publish("trade.XYZ", `{"p":100.5,"q":2}`)
	publish("trade.XYZ", `{"p":100.75,"q":1}`)
	publish("trade.XYZ", `{"p":100.25,"q":5}`)

	// The subscriber held the first trade when it stopped.
	sub, err := client.Subscribe(client.Config{Addr: serverURL}, []string{"trade.XYZ"},
		client.WithSince("trade.XYZ", first))
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for seen := 0; seen < 2; {
		ev, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		switch ev := ev.(type) {
		case client.Recovered:
			fmt.Printf("%s continues after s %d: %d missed\n", ev.Topic, ev.From, ev.Missed)
		case client.Pub:
			var trade struct{ P, Q float64 }
			if err := ev.DecodeData(&trade); err != nil {
				log.Fatal(err)
			}
			fmt.Printf("%s s %d: %v at %v\n", ev.Topic, ev.Seq, trade.Q, trade.P)
			seen++
		}
	}
	// Output:
	// trade.XYZ continues after s 1: 2 missed
	// trade.XYZ s 2: 1 at 100.75
	// trade.XYZ s 3: 5 at 100.25
}

// When the server restarts without Redis its history is gone: the
// subscription comes back by itself and says, with a Reset, that the
// topic starts again in a new epoch. The subscriber drops what it held
// of the topic and builds it anew from what follows.
func ExampleSubscription_Next_restart() {
	sub, err := client.Subscribe(client.Config{Addr: serverURL}, []string{"book.XYZ"},
		client.WithBackoff(client.Backoff{Max: 200 * time.Millisecond}))
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	restarted := false
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		switch ev := ev.(type) {
		case client.Subscribed:
			fmt.Printf("subscribed to %s at s %d\n", ev.Topic, ev.Seq)
			publish("book.XYZ", `{"b":[[1.5,10]]}`)
		case client.Pub:
			fmt.Printf("%s s %d: %s\n", ev.Topic, ev.Seq, ev.Data)
			if restarted {
				return
			}
			restartServer() // the server goes away and comes back
			restarted = true
		case client.Reset:
			fmt.Printf("reset %s: start again after s %d\n", ev.Topic, ev.Seq)
			publish("book.XYZ", `{"b":[[1.5,12]]}`)
		case client.Disconnected, client.Connected:
			// As the link goes and comes back; how many attempts it
			// takes depends on timing, so this example does not print
			// them.
		}
	}
	// Output:
	// subscribed to book.XYZ at s 0
	// book.XYZ s 1: {"b":[[1.5,10]]}
	// reset book.XYZ: start again after s 0
	// book.XYZ s 1: {"b":[[1.5,12]]}
}
