//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

// isTTY is false where the terminal driver cannot be asked: no progress line,
// no "reading from the terminal" hint, which is the safe side.
func isTTY(uintptr) bool { return false }
