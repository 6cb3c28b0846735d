package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"syscall"
)

// ErrRejected matches (errors.Is) every permanent rejection of a call: the node
// answered 400, 415 or another 4xx but 408/429, or the call cannot be sent at all.
// The call is settled (counted, logged) and must not be retried.
var ErrRejected = errors.New("node rejected the call")

// RejectedError tells which message of a call was rejected and how.
type RejectedError struct {
	RequestID string
	Message   string // "request" or "response"
	Code      int    // the node's status code; 0 when the call could not be sent (see Reason)
	Reason    string // reply body snippet, or why the call could not be sent
}

func (e *RejectedError) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("node: %s message of call %q not sendable: %s", e.Message, e.RequestID, e.Reason)
	}
	return fmt.Sprintf("node rejected %s message of call %q with status %d: %q", e.Message, e.RequestID, e.Code, e.Reason)
}

// Is makes errors.Is(err, ErrRejected) true.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// ErrAlreadyHeld matches (errors.Is) an *AlreadyHeldError.
var ErrAlreadyHeld = errors.New("node already holds the call")

// AlreadyHeldError is what Deliver returns when the node's reply shows it held
// the whole call before this delivery (the same input replayed, a redelivery
// after a crash or a lease move): the call is delivered, and nothing new reached
// the node. It is not a failure: callers that settle calls count it as delivered
// (AlreadyHeld reports true, so they need not import this package).
type AlreadyHeldError struct {
	RequestID string
	Reason    string // the node's reply body snippet
}

func (e *AlreadyHeldError) Error() string {
	return fmt.Sprintf("node already holds call %q (delivered before): %q", e.RequestID, e.Reason)
}

// AlreadyHeld reports true: the call counts as delivered.
func (e *AlreadyHeldError) AlreadyHeld() bool { return true }

// Is makes errors.Is(err, ErrAlreadyHeld) true.
func (e *AlreadyHeldError) Is(target error) bool { return target == ErrAlreadyHeld }

// replyClass sorts node replies per the contract.
type replyClass int

const (
	accepted  replyClass = iota // 2xx, 403 (would block, still delivered)
	rejected                    // 400, 415, other 4xx but 408/429
	retryable                   // 408, 429, 5xx, and anything unexpected (1xx, 3xx)
)

func classifyStatus(code int) replyClass {
	switch {
	case code >= 200 && code < 300, code == 403:
		return accepted
	case code == 408, code == 429:
		return retryable
	case code >= 400 && code < 500:
		return rejected
	default:
		// 5xx, and codes the contract does not name (3xx redirects are not followed):
		// retrying keeps every call and makes a misconfigured target visible in retries_total.
		return retryable
	}
}

// errorReason names a transport failure for metrics and logs.
func errorReason(err error) string {
	var (
		dnsErr  *net.DNSError
		netErr  net.Error
		certErr *tls.CertificateVerificationError
		uaErr   x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
		alert   tls.AlertError
		recErr  tls.RecordHeaderError
		protErr textproto.ProtocolError
		opErr   *net.OpError
		nhErr   *notHTTPError
	)
	switch {
	case errors.As(err, &nhErr):
		return "not_http"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.As(err, &certErr), errors.As(err, &uaErr), errors.As(err, &hostErr),
		errors.As(err, &invErr), errors.As(err, &alert), errors.As(err, &recErr),
		errors.As(err, &opErr) && (opErr.Op == "remote error" || opErr.Op == "local error"): // crypto/tls alerts

		return "tls"
	case errors.As(err, &protErr), strings.Contains(err.Error(), "malformed HTTP"):
		return "protocol" // a reply net/http could not parse
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection_reset"
	default:
		return "connection"
	}
}
