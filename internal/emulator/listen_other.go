//go:build !linux

package emulator

// listensOn cannot look here; an answer on the port is taken as the emulator's.
func listensOn(int, int) (bool, error) { return true, nil }
