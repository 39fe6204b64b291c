package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// ParseTrustedProxies reads BATON_TRUSTED_PROXIES: comma-separated CIDRs
// (10.0.0.0/8) or addresses (192.0.2.7). Blanks are ignored.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var prefixes []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil {
				return nil, fmt.Errorf("%q is neither a CIDR (10.0.0.0/8) nor an address (192.0.2.7)", part)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		prefixes = append(prefixes, p.Masked())
	}
	return prefixes, nil
}

// client is who sent a request: its address, and whether it reached Baton
// (or the proxy in front of it) over TLS. A request from a trusted proxy
// (Config.TrustedProxies) is believed about both: the client is the last
// address of X-Forwarded-For (or Forwarded's for=) that is no trusted proxy,
// and TLS is what X-Forwarded-Proto (or Forwarded's proto=) says. From
// anyone else these headers are ignored: a client could write anything there.
func (s *Server) client(r *http.Request) (addr netip.Addr, tls bool) {
	addr = peerAddr(r.RemoteAddr)
	tls = r.TLS != nil
	if !s.trusted(addr) {
		return addr, tls
	}
	hops, proto := forwarded(r.Header)
	for _, hop := range slices.Backward(hops) {
		addr = hop
		if !s.trusted(hop) {
			break
		}
	}
	if proto != "" {
		tls = strings.EqualFold(proto, "https")
	}
	return addr, tls
}

func (s *Server) trusted(a netip.Addr) bool {
	return a.IsValid() && slices.ContainsFunc(s.cfg.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(a) })
}

// forwarded reads the hops a request went through (X-Forwarded-For, else
// Forwarded's for=), nearest last, and the scheme the client used (the
// first X-Forwarded-Proto, else Forwarded's first proto=). Hops that are not
// addresses (obfuscated identifiers, "unknown") end the list there.
func forwarded(h http.Header) (hops []netip.Addr, proto string) {
	var fors []string
	if xff := h.Values("X-Forwarded-For"); len(xff) > 0 {
		fors = strings.Split(strings.Join(xff, ","), ",")
		proto, _, _ = strings.Cut(h.Get("X-Forwarded-Proto"), ",")
	} else {
		for _, element := range strings.Split(strings.Join(h.Values("Forwarded"), ","), ",") {
			for _, pair := range strings.Split(element, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
				v = strings.Trim(v, `"`)
				switch strings.ToLower(k) {
				case "for":
					fors = append(fors, v)
				case "proto":
					if proto == "" {
						proto = v
					}
				}
			}
		}
	}
	for _, f := range fors {
		a := peerAddr(strings.Trim(strings.TrimSpace(f), "[]"))
		if !a.IsValid() {
			hops = hops[:0] // an address past this one cannot be matched to a hop
			continue
		}
		hops = append(hops, a)
	}
	return hops, strings.TrimSpace(proto)
}

// peerAddr reads "host:port", "[v6]:port" or a bare address.
func peerAddr(s string) netip.Addr {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, _ := netip.ParseAddr(strings.Trim(s, "[]"))
	return a.Unmap()
}
