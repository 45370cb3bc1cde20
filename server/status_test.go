package server

import "testing"

func TestDialAddr(t *testing.T) {
	for _, tc := range []struct{ bound, host, want string }{
		{"[::]:8080", "example.com:8082", "example.com:8080"},
		{"[::]:8080", "example.com", "example.com:8080"},
		{"0.0.0.0:8081", "10.1.2.3:8082", "10.1.2.3:8081"},
		{":8080", "md.example.com:443", "md.example.com:8080"},
		{"[::]:8080", "[::1]:8082", "[::1]:8080"},
		{"[::]:8080", "[2001:db8::7]", "[2001:db8::7]:8080"},
		{"[::]:8080", "", "localhost:8080"},
		{"127.0.0.1:8080", "example.com:8082", "127.0.0.1:8080"},
		{"192.0.2.10:9000", "example.com", "192.0.2.10:9000"},
		{"[::1]:8080", "example.com", "[::1]:8080"},
	} {
		if got := dialAddr(tc.bound, tc.host); got != tc.want {
			t.Errorf("dialAddr(%q, %q) = %q, want %q", tc.bound, tc.host, got, tc.want)
		}
	}
}
