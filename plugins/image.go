package plugins

import "strings"

// isHelperToken marks images that sit next to a database without being
// one (exporters, operators, proxies): "postgres-exporter" is not PostgreSQL.
func isHelperToken(tok string) bool {
	switch tok {
	case "exporter", "operator", "sentinel", "backup", "proxy", "pgbouncer", "pgpool",
		"agent", "metrics", "router", "client", "tools", "shell", "ui", "admin", "bouncer", "express":
		return true
	}
	return false
}

// ImageName returns the repository's last path element of an image
// reference, lower-cased, without registry, tag or digest:
// "docker.io/bitnami/postgresql:16@sha256:…" gives "postgresql".
func ImageName(image string) string {
	ref, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		ref = ref[i+1:]
	}
	ref, _, _ = strings.Cut(ref, ":")
	return strings.ToLower(ref)
}

// ImageTokens splits ImageName(image) on '-', '_' and '.'.
func ImageTokens(image string) []string {
	return strings.FieldsFunc(ImageName(image), func(r rune) bool {
		return r == '-' || r == '_' || r == '.'
	})
}

// MatchImage reports whether the image's name has one of keywords as a
// token and no token of a helper image. Engines build Matches on it.
func MatchImage(image string, keywords ...string) bool {
	tokens := ImageTokens(image)
	found := false
	for _, tok := range tokens {
		if isHelperToken(tok) {
			return false
		}
		for _, k := range keywords {
			if tok == k {
				found = true
			}
		}
	}
	return found
}
