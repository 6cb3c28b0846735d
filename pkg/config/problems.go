package config

import (
	"fmt"
	"strings"
)

// Problems is every invalid setting found in one pass: an operator fixing a
// configuration one start-up at a time would need as many starts as mistakes.
type Problems []error

func (p Problems) Error() string {
	if len(p) == 1 {
		return p[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(p))
	for _, e := range p {
		b.WriteString("\n  - ")
		b.WriteString(strings.ReplaceAll(e.Error(), "\n", "\n    "))
	}
	return b.String()
}

// Unwrap lets errors.Is and errors.As see each problem.
func (p Problems) Unwrap() []error { return p }

// collect flattens joined errors (each section's Validate joins its own) into
// Problems, dropping repeats (the host rules are checked by two sections).
func collect(errs ...error) error {
	var out Problems
	seen := map[string]bool{}
	var add func(error)
	add = func(err error) {
		if err == nil {
			return
		}
		// Only plain joins are split: a wrapped error keeps its context.
		if j, ok := err.(interface{ Unwrap() []error }); ok && isJoin(err) {
			for _, e := range j.Unwrap() {
				add(e)
			}
			return
		}
		if msg := err.Error(); !seen[msg] {
			seen[msg] = true
			out = append(out, err)
		}
	}
	for _, e := range errs {
		add(e)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func isJoin(err error) bool {
	if _, ok := err.(Problems); ok {
		return true
	}
	// errors.Join's type is unexported; a wrapping fmt.Errorf with several
	// %w also unwraps to a list but carries its own context, so it stays whole.
	return fmt.Sprintf("%T", err) == "*errors.joinError"
}

// suggest returns the candidate closest to name when it is close enough to
// be a typo of it (the YAML keys and the environment variables share it).
func suggest(name string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	// A third of the name, at least 2: catches swapped, missing and extra
	// letters without proposing an unrelated setting.
	if bestD < 0 || bestD > max(2, len(name)/3) {
		return ""
	}
	return best
}

// editDistance is the Damerau (optimal string alignment) distance: a swap of
// two neighbouring letters, the commonest typo, counts as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// didYouMean is the hint after an unknown name, or "".
func didYouMean(name string, candidates []string) string {
	if s := suggest(name, candidates); s != "" {
		return fmt.Sprintf("did you mean %s? ", s)
	}
	return ""
}
