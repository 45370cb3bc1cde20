// Package mpack holds the msgpack wire primitives of the codec: appending
// headers and scalars, and reading them back (the end of a value, a map or
// array header, a str, an unsigned integer) without decoding into Go
// values. It knows nothing of tickfan's messages; it only reads and writes
// msgpack, on byte slices the caller owns, and never allocates to read.
package mpack
