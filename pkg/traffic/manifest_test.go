package traffic

import "testing"

func TestMatchesTemplate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path, tmpl string
		want       bool
	}{
		{"/a/{id}", "/a/{x}", true},
		{"/a/slug-1/b", "/a/{x}/b", true},
		{"/a//b", "/a/{x}/b", false},
		{"/a/1", "/a/{x}/b", false},
		{"/a/b", "/a/c", false},
		{"/", "/", true},
	} {
		if got := MatchesTemplate(tc.path, tc.tmpl); got != tc.want {
			t.Errorf("MatchesTemplate(%q, %q) = %v", tc.path, tc.tmpl, got)
		}
	}
}
