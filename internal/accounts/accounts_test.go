package accounts_test

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/accounts"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func open(t *testing.T) (*accounts.Store, jetstream.JetStream, *clock) {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 10*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	s, err := accounts.Open(ctx, js, accounts.Config{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s, js, c
}

func TestNormaliseEmail(t *testing.T) {
	for in, want := range map[string]string{
		" Ada@Example.COM ":        "ada@example.com",
		"Ada <ada@example.com>":    "ada@example.com",
		"not-an-email":             "",
		"ada@localhost":            "",
		"":                         "",
		"a@b.co\r\nBcc: x@evil.io": "",
	} {
		got, err := accounts.NormaliseEmail(in)
		if want == "" {
			if !errors.Is(err, accounts.ErrBadEmail) {
				t.Errorf("NormaliseEmail(%q) = %q, %v; want ErrBadEmail", in, got, err)
			}
			continue
		}
		if got != want || err != nil {
			t.Errorf("NormaliseEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestConcurrentFirstSignInsCreateOneUser(t *testing.T) {
	s, _, _ := open(t)
	ctx := testenv.Context(t, 10*time.Second)
	ids := make([]string, 16)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := s.EnsureUser(ctx, "Grace@Example.com")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = u.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("different users for one email: %v", ids)
		}
	}
	u, err := s.UserByEmail(ctx, "grace@example.com")
	if err != nil || u.ID != ids[0] || u.Email != "grace@example.com" {
		t.Fatalf("UserByEmail = %+v, %v", u, err)
	}
}

func TestMagicLinkWorksOnceAndOnlyForItsLifetime(t *testing.T) {
	s, js, c := open(t)
	ctx := testenv.Context(t, 10*time.Second)
	token, err := s.IssueLink(ctx, "ada@example.com", "/tracker")
	if err != nil {
		t.Fatal(err)
	}
	// The bucket never holds the token itself.
	kv, _ := js.KeyValue(ctx, subjects.AccountsMagicLinksBucket)
	keys, _ := kv.Keys(ctx)
	for _, k := range keys {
		if strings.Contains(k, token) {
			t.Fatal("token stored in clear")
		}
	}
	l, err := s.RedeemLink(ctx, token)
	if err != nil || l.Email != "ada@example.com" || l.Next != "/tracker" {
		t.Fatalf("first redeem = %+v, %v", l, err)
	}
	if _, err := s.RedeemLink(ctx, token); !errors.Is(err, accounts.ErrInvalidLink) {
		t.Fatalf("second redeem: %v, want ErrInvalidLink", err)
	}

	late, _ := s.IssueLink(ctx, "ada@example.com", "/")
	c.add(16 * time.Minute)
	if _, err := s.RedeemLink(ctx, late); !errors.Is(err, accounts.ErrInvalidLink) {
		t.Fatalf("expired link: %v, want ErrInvalidLink", err)
	}
	if _, err := s.RedeemLink(ctx, "forged"); !errors.Is(err, accounts.ErrInvalidLink) {
		t.Fatalf("forged token: %v", err)
	}
}

func TestConcurrentRedemptionsOfOneLinkSucceedOnce(t *testing.T) {
	s, _, _ := open(t)
	ctx := testenv.Context(t, 10*time.Second)
	token, err := s.IssueLink(ctx, "ada@example.com", "/")
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.RedeemLink(ctx, token); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, accounts.ErrInvalidLink) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d redemptions succeeded, want 1", ok.Load())
	}
}

func TestSetPremium(t *testing.T) {
	s, _, _ := open(t)
	ctx := testenv.Context(t, 10*time.Second)
	if _, err := s.SetPremium(ctx, "nobody@example.com", true); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("premium for unknown user: %v", err)
	}
	u, _ := s.EnsureUser(ctx, "ada@example.com")
	if u.Premium {
		t.Fatal("new user premium")
	}
	if _, err := s.SetPremium(ctx, "ADA@example.com", true); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.User(ctx, u.ID); !u.Premium {
		t.Fatal("premium not stored")
	}
}

func TestOperatorRoleIsSetAndTakenAwayWithoutTouchingThePlan(t *testing.T) {
	s, _, _ := open(t)
	ctx := testenv.Context(t, 10*time.Second)
	u, _ := s.EnsureUser(ctx, "olga@example.com")
	if u.Operator {
		t.Fatal("new user is an operator")
	}
	if _, err := s.SetPremium(ctx, "olga@example.com", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetOperator(ctx, "OLGA@example.com", true); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.User(ctx, u.ID); !u.Operator || !u.Premium {
		t.Fatalf("after operator on: %+v, want operator and still premium", u)
	}
	if _, err := s.SetOperator(ctx, "olga@example.com", false); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.User(ctx, u.ID); u.Operator || !u.Premium {
		t.Fatalf("after operator off: %+v", u)
	}
}
