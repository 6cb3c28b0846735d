//go:build race

package kinesis

// raceEnabled: the race detector slows everything ~10x; volume tests scale down.
const raceEnabled = true
