//go:build !unix

package server

import "time"

// The status page shows no CPU or resident memory where the system does
// not give them as Unix does.
func processCPU() time.Duration { return 0 }
func processRSS() uint64        { return 0 }
