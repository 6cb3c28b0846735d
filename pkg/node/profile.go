package node

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/wallarm/apigw-connector/pkg/accesslog"
)

// DefaultProfile is node.profile's default: the shape this connector assumes
// (rawProfile), not one Wallarm documents.
const DefaultProfile = "raw"

// profile is one wire shape: how an API call becomes the node's two messages.
// Wallarm publishes no specification of that shape, so it is a setting
// (node.profile); delivery (retries, pooling, settling, the half-sent record)
// sees only *message and the bytes a profile writes. A new shape is one file
// that calls registerProfile from an init function.
type profile interface {
	// message checks the call and fills m, zeroed, with what its two messages
	// share. A call that cannot be sent is a *RejectedError with code 0, label
	// naming why (unsendable_total). m is reused once its call is settled: a
	// profile keeps nothing of it.
	message(m *message, call *accesslog.APICall) (label string, err error)
	// appendMessage writes the message of kind (kindRequest or kindResponse)
	// into b, the same bytes each time it is asked (a retry resends them). The
	// request message's method is m.method and the response message's is
	// node.response_method: the transport reads a reply to HEAD without a body.
	appendMessage(b []byte, m *message, kind string) []byte
}

// profileEnv is what a profile is built from: the settings (validated) and
// what the client derived from node.url.
type profileEnv struct {
	cfg      Config
	scheme   string      // of node.url
	dialHost string      // host:port of node.url, as given
	nodeHost string      // host of node.url as a Host header
	basePath string      // escaped path of node.url + node.path_prefix, no trailing slash
	static   http.Header // connector type and version, node.extra_headers; canonical names
}

// profiles maps node.profile values to their constructors. Written only by
// init functions, so read without a lock.
var profiles = map[string]func(profileEnv) profile{}

func registerProfile(name string, build func(profileEnv) profile) {
	if _, dup := profiles[name]; dup {
		panic("node: profile " + name + " registered twice")
	}
	profiles[name] = build
}

// ProfileNames lists the valid values of node.profile, sorted.
func ProfileNames() []string { return slices.Sorted(maps.Keys(profiles)) }

// validProfile reports whether name is a registered profile; empty means DefaultProfile.
func validProfile(name string) bool {
	_, ok := profiles[name]
	return ok || name == ""
}

// profileError is Validate's complaint about node.profile.
func profileError(name string) string {
	return fmt.Sprintf("must be one of %s (the wire shape of the two messages), got %q", strings.Join(ProfileNames(), ", "), name)
}

// buildProfile sets up the configured profile and the health check's headers;
// the config is validated, so the profile exists.
func (c *Client) buildProfile() {
	name := c.cfg.Profile
	if name == "" {
		name = DefaultProfile
	}
	c.prof = profiles[name](profileEnv{
		cfg:      c.cfg,
		scheme:   c.scheme,
		dialHost: c.dialHost,
		nodeHost: c.nodeHostHdr,
		basePath: c.basePath,
		static:   c.static,
	})
	c.probeHdrs = sortedLines(staticHeaders(c.static))
}

// messagePool recycles messages: one allocation per call otherwise.
var messagePool = sync.Pool{New: func() any { return new(message) }}

// newMessage builds the call's message with the configured profile; once the
// call is settled, freeMessage returns it.
func (c *Client) newMessage(call *accesslog.APICall) (*message, string, error) {
	m := messagePool.Get().(*message)
	label, err := c.prof.message(m, call)
	if err != nil {
		freeMessage(m)
		return nil, label, err
	}
	return m, "", nil
}

func freeMessage(m *message) {
	*m = message{}
	messagePool.Put(m)
}

// appendMessage writes the message of kind into b: the profile's for a call,
// the health check (kindProbe, m nil) the same for every profile.
func (c *Client) appendMessage(b []byte, m *message, kind string) []byte {
	if kind != kindProbe {
		return c.prof.appendMessage(b, m, kind)
	}
	b = appendHead(b, c.probeMethod, c.healthTarget, c.nodeHostHdr)
	b = appendHeaders(b, c.probeHdrs, nil)
	return append(b, "\r\n"...)
}
