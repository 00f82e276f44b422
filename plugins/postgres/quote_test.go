package postgres

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/kubectl-sts/kubectl-sts/plugins/pluginstest"
)

func TestValidateSlotName(t *testing.T) {
	for _, ok := range []string{"pg_1", "a", "_cnpg_db_0", strings.Repeat("x", 63)} {
		assert.NoError(t, ValidateSlotName(ok), ok)
	}
	for _, bad := range []string{"", "PG_1", "pg-1", "pg 1", "pg'1", `pg\1`, "pg;1", "é", strings.Repeat("x", 64), "pg_1\x00"} {
		assert.Error(t, ValidateSlotName(bad), "%q", bad)
	}
}

func TestQuoteLiteral(t *testing.T) {
	assert.Equal(t, `'pg_1'`, QuoteLiteral("pg_1"))
	assert.Equal(t, `'it''s'`, QuoteLiteral("it's"))
	assert.Equal(t, ` E'a\\b'''`, QuoteLiteral(`a\b'`))
	assert.Equal(t, `''`, QuoteLiteral(""))
}

func TestSlotNames(t *testing.T) {
	assert.Equal(t, "pg_cluster_1", SlotNameFromMember("pg-cluster-1"))
	assert.Equal(t, "db_0_svc", SlotNameFromMember("DB-0.svc"))
	assert.Equal(t, "au0033b", SlotNameFromMember("a!b"), "Patroni writes other characters as u and their code")
	assert.Len(t, SlotNameFromMember(strings.Repeat("a", 70)), 63)
	assert.Equal(t, []string{"pg_cluster_2", "slot_pg_cluster_2", "_cnpg_pg_cluster_2", "repmgr_slot_1002"}, SlotCandidates("pg-cluster", 2))
}

// unquote reads one SQL string literal the way PostgreSQL's lexer does,
// with standard_conforming_strings on or off, and reports whether the
// literal was the whole input.
func unquote(lit string, standard bool) (string, bool) {
	s := strings.TrimLeft(lit, " ")
	escape := !standard
	if strings.HasPrefix(s, "E'") {
		escape = true
		s = s[1:]
	}
	if !strings.HasPrefix(s, "'") {
		return "", false
	}
	s = s[1:]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case c == '\'':
			return b.String(), i == len(s)-1
		case c == '\\' && escape:
			if i+1 == len(s) {
				return "", false
			}
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", false // unterminated
}

// FuzzQuoteLiteral: whatever the input, the quoted form is exactly one
// literal that means the input (NUL bytes dropped), under either setting
// of standard_conforming_strings.
func FuzzQuoteLiteral(f *testing.F) {
	for _, seed := range []string{"pg_1", "", "'", "''", `\`, `\'`, `'; DROP TABLE t; --`, "a\x00b", `E'x'`, "$$", "é'ü\\", "\n'\r"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := QuoteLiteral(s)
		want := strings.ReplaceAll(s, "\x00", "")
		for _, standard := range []bool{true, false} {
			got, whole := unquote(q, standard)
			if !whole || got != want {
				t.Fatalf("QuoteLiteral(%q) = %s reads back as %q (whole literal: %v, standard_conforming_strings=%v)", s, q, got, whole, standard)
			}
		}
	})
}

var safeSlot = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// FuzzSlotName: only names of the server's own alphabet pass, they need
// no escaping, and the SQL built from them has exactly one literal.
func FuzzSlotName(f *testing.F) {
	for _, seed := range []string{"pg_1", "PG-1", "x'y", `a\b`, strings.Repeat("z", 64), "slot_db_0", "ü"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateSlotName(s) != nil {
			if safeSlot.MatchString(s) {
				t.Fatalf("valid name %q refused", s)
			}
		} else {
			if !safeSlot.MatchString(s) {
				t.Fatalf("unsafe name %q accepted", s)
			}
			if QuoteLiteral(s) != "'"+s+"'" {
				t.Fatalf("valid name %q needed escaping", s)
			}
			for _, sql := range []string{dropSlotSQL(s), slotStateSQL(s)} {
				if strings.Count(sql, "'") != strings.Count(strings.ReplaceAll(sql, "'"+s+"'", ""), "'")+2 {
					t.Fatalf("SQL for %q has more than the one literal: %s", s, sql)
				}
			}
		}
		if s != "" && utf8.ValidString(s) {
			if n := SlotNameFromMember(s); ValidateSlotName(n) != nil {
				t.Fatalf("SlotNameFromMember(%q) = %q is not a valid slot name", s, n)
			}
		}
	})
}

func TestPsqlScriptMapsTheContainersCredentials(t *testing.T) {
	path := pluginstest.FakeProgram(t, "psql", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGAPPNAME")
	got := pluginstest.RunScript(t, append(path, "POSTGRES_PASSWORD=from-official-image"), psqlCommand("SELECT 1"))
	assert.Equal(t, []string{"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "SELECT 1"}, got["arg"])
	assert.Equal(t, []string{"postgres"}, got["PGUSER"])
	assert.Equal(t, []string{"from-official-image"}, got["PGPASSWORD"])
	assert.Equal(t, []string{"postgres"}, got["PGDATABASE"])
	assert.Equal(t, []string{"kubectl-sts"}, got["PGAPPNAME"])

	got = pluginstest.RunScript(t, append(path, "PGUSER_SUPERUSER=admin", "PGPASSWORD_SUPERUSER=spilo", "POSTGRES_PASSWORD=other"), psqlCommand("SELECT 1"))
	assert.Equal(t, []string{"admin"}, got["PGUSER"], "Spilo's superuser")
	assert.Equal(t, []string{"spilo"}, got["PGPASSWORD"])

	got = pluginstest.RunScript(t, append(path, "PGPASSWORD=explicit", "POSTGRES_PASSWORD=other"), psqlCommand("SELECT 1"))
	assert.Equal(t, []string{"explicit"}, got["PGPASSWORD"], "the container's own PGPASSWORD wins")

	got = pluginstest.RunScript(t, path, psqlCommand("SELECT 1"))
	assert.Equal(t, []string{"<unset>"}, got["PGPASSWORD"], "no empty password is exported")
}

// FuzzPsqlScriptPassesSQLVerbatim: the SQL reaches psql as one argument,
// byte for byte, however it is made: the shell never interprets it.
func FuzzPsqlScriptPassesSQLVerbatim(f *testing.F) {
	for _, seed := range []string{"SELECT 1", "$(touch /tmp/pwned)", "`id`", "'; rm -rf / #", "\"$PGPASSWORD\"", "a\nb", "-c", "--help", "*", "${IFS}"} {
		f.Add(seed)
	}
	path := pluginstest.FakeProgram(f, "psql")
	f.Fuzz(func(t *testing.T, sql string) {
		if strings.ContainsRune(sql, 0) {
			return // no argument of any program can hold a NUL byte
		}
		got := pluginstest.RunScript(t, path, psqlCommand(sql))
		if args := got["arg"]; len(args) != 8 || args[7] != sql {
			t.Fatalf("psql got %q, want the SQL %q as its last argument", args, sql)
		}
	})
}
