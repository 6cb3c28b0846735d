package jsonscan

import (
	"testing"
	"time"

	"github.com/wallarm/apigw-connector/internal/testenv/testkit"
)

func cpuReport(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64((testkit.ProcessCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

const benchMsg = `"{\"requestId\":\"3c6ef372-fe96-4233-80b6-195e7b26e54d\",\"httpMethod\":\"DELETE\",\"path\":\"/orders/8722\",\"protocol\":\"HTTP/1.1\",\"status\":\"204\",\"responseLength\":\"0\",\"requestTime\":\"24/Nov/2026:10:00:00 +0000\",\"requestTimeEpoch\":\"1795514400005\",\"responseLatency\":\"24\",\"integrationLatency\":\"20\",\"integrationStatus\":\"204\",\"errorMessage\":\"-\",\"stage\":\"prod\",\"domainName\":\"api.shop.example.com\",\"sourceIp\":\"186.28.200.225\",\"userAgent\":\"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\"}"`

func BenchmarkAppendString(b *testing.B) {
	src := []byte(benchMsg)
	var dst []byte
	b.SetBytes(int64(len(src)))
	cpu0 := testkit.ProcessCPU()
	defer cpuReport(b, cpu0)
	for range b.N {
		var err error
		dst, _, err = AppendString(dst[:0], src, 0)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkString(b *testing.B) {
	src := []byte(benchMsg)
	b.SetBytes(int64(len(src)))
	cpu0 := testkit.ProcessCPU()
	defer cpuReport(b, cpu0)
	for range b.N {
		if _, _, err := String(src, 0); err != nil {
			b.Fatal(err)
		}
	}
}
