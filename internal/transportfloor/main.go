// Command transportfloor is the transport floor of `make bench-cost`: the least
// client that delivers the same two messages per call to the same node. The
// messages are built before the clock starts (same request line and headers as
// the connector's default raw profile, a distinct request id per call); then
// each of -conns goroutines owns one keep-alive connection and, per call,
// writes the request message, reads its reply, writes the response message,
// reads its reply. No decoding, no pipelining, no retries, no metrics.
//
// With -depth D above 1 it is the pipelined floor: each goroutine writes the
// request messages of D calls in one write, reads their D replies, then does
// the same with their response messages (4 connections at depth 16 keep the 64
// messages in flight of the connector's defaults, in the fewest system calls).
//
// It prints one line: calls, connections, CPU seconds (user+sys of this
// process, over the send phase only), wall seconds and calls per CPU-second.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5050", "node host:port")
	calls := flag.Int("calls", 20000, "calls (two messages each)")
	conns := flag.Int("conns", 64, "connections, one sending goroutine each")
	depth := flag.Int("depth", 1, "calls whose messages leave in one write (pipelined); 1: one message per write")
	flag.Parse()
	if *conns < 1 || *depth < 1 {
		fmt.Fprintln(os.Stderr, "transportfloor: -conns and -depth must be at least 1")
		os.Exit(2)
	}
	if err := run(*addr, *calls, *conns, *depth); err != nil {
		fmt.Fprintln(os.Stderr, "transportfloor:", err)
		os.Exit(1)
	}
}

// messages builds call i's two messages as the connector's raw profile writes them.
func messages(i int) (req, resp []byte) {
	id := "floor-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(i)
	hdrs := "X-Wallarm-Request-Id: " + id + "\r\n" +
		"X-Wallarm-Forwarded-Host: api.shop.example.com\r\n" +
		"X-Wallarm-Forwarded-For: 152.69.116.127\r\n" +
		"X-Wallarm-Connector-Type: apigw-connector\r\n" +
		"X-Wallarm-Connector-Version: floor\r\n"
	req = []byte("GET /orders/" + strconv.Itoa(i%1000) + " HTTP/1.1\r\nHost: api.shop.example.com\r\n" +
		"User-Agent: PostmanRuntime/7.42.0\r\n" + hdrs + "\r\n")
	resp = []byte("POST /orders/" + strconv.Itoa(i%1000) + " HTTP/1.1\r\nHost: api.shop.example.com\r\n" +
		"Content-Length: 0\r\n" + hdrs + "X-Wallarm-Response-Code: 200\r\n\r\n")
	return req, resp
}

func run(addr string, calls, conns, depth int) error {
	reqs, resps := make([][]byte, calls), make([][]byte, calls)
	for i := range calls {
		reqs[i], resps[i] = messages(i)
	}
	ncs := make([]net.Conn, conns)
	for i := range ncs {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("dial %s: %w", addr, err)
		}
		defer nc.Close()
		ncs[i] = nc
	}
	cpu0, start := testkit.ProcessCPU(), time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for w, nc := range ncs {
		wg.Go(func() {
			br := bufio.NewReaderSize(nc, 16<<10)
			var buf []byte
			batch := make([]int, 0, depth)
			for i := w; i < calls; {
				batch = batch[:0]
				for ; i < calls && len(batch) < depth; i += conns {
					batch = append(batch, i)
				}
				for _, msgs := range [][][]byte{reqs, resps} {
					buf = buf[:0]
					for _, c := range batch {
						buf = append(buf, msgs[c]...)
					}
					if _, err := nc.Write(buf); err != nil {
						errs <- err
						return
					}
					for range batch {
						if err := readReply(br); err != nil {
							errs <- err
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	wall, cpu := time.Since(start).Seconds(), (testkit.ProcessCPU() - cpu0).Seconds()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("exchange: %w", err)
	}
	fmt.Printf("floor calls=%d conns=%d depth=%d cpu_s=%.3f wall_s=%.3f calls_per_cpu_s=%.0f\n", calls, conns, depth, cpu, wall, float64(calls)/cpu)
	return nil
}

// readReply consumes one reply: headers up to the empty line, then a
// Content-Length body if any (the node's replies are small and not chunked).
func readReply(br *bufio.Reader) error {
	length := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	_, err := br.Discard(length)
	return err
}
