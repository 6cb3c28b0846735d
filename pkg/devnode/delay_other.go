//go:build !linux

package devnode

func newDelayer() delayer { return timerDelayer{} }
