// Package bench holds tickfan's load generator and its micro-benchmarks
// against the listed alternatives. The server never imports it.
package bench
