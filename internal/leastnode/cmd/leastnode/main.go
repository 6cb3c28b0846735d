// Command leastnode serves internal/leastnode for `make bench-cost`: it prints
// its URL on the first line of stdout, and on SIGTERM or SIGINT one line with
// the messages it read, the distinct request ids of the response messages and
// its own CPU seconds (user+sys), then exits.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/wallarm/apigw-connector/internal/leastnode"
	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	latency := flag.Duration("latency", 0, "hold each reply this long after its message was read (a connection's messages answered one after the other)")
	flag.Parse()
	var mu sync.Mutex
	ids := map[string]struct{}{}
	s, err := leastnode.Start(*listen, leastnode.Options{Latency: *latency, OnResponse: func(id string) {
		mu.Lock()
		ids[id] = struct{}{}
		mu.Unlock()
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "leastnode:", err)
		os.Exit(1)
	}
	fmt.Println(s.URL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	s.Close()
	req, resp := s.Counts()
	mu.Lock()
	n := len(ids)
	mu.Unlock()
	cpu := testkit.ProcessCPU()
	fmt.Printf("leastnode requests=%d responses=%d distinct=%d cpu_s=%.3f\n", req, resp, n, cpu.Seconds())
}
