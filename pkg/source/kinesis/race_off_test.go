//go:build !race

package kinesis

const raceEnabled = false
