// Package testkit holds test helpers that import nothing of this module, so
// that the tests of packages internal/testenv itself imports (pkg/node,
// pkg/devnode) can use them too: a log buffer safe for concurrent writers and
// a throwaway certificate authority.
package testkit
