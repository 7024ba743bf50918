package events

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"jetfleet/internal/ids"
)

// Contact is a participant as exports see them: someone with a confirmed
// (or paid) registration who agreed to share their name and address with
// the organiser, and who has not had their data deleted.
type Contact struct {
	RegistrationID string
	Name           string
	FirstName      string // Name split at its last space, for CRMs
	LastName       string
	Email          string
	Ticket         string
	Status         RegStatus
	Registered     time.Time // when the participant confirmed
	ConsentVersion string
}

// ExportAdmin returns event eid to someone allowed to export its
// participants: its organiser (account uid) or a host they invited
// (address email), the admins of Member. Anyone else gets ErrNotFound, so
// an event's existence is not revealed.
func (s *Service) ExportAdmin(ctx context.Context, eid, uid, email string) (Event, error) {
	if !ids.Valid(eid) {
		return Event{}, ErrNotFound
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
	if err != nil {
		return Event{}, err
	}
	email, _ = normaliseEmail(email)
	if e.IsAdmin(uid, email) {
		return e, nil
	}
	return Event{}, ErrNotFound
}

// ExportContacts lists the contacts of event eid, ordered by registration
// id so an export can resume after the last one it sent. It reads the
// registrations as they are now: a person deleted under GDPR (pseudonymised)
// is never in it, however long ago the export was asked for.
func (s *Service) ExportContacts(ctx context.Context, eid string) (Event, []Contact, error) {
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
	if err != nil {
		return Event{}, nil, err
	}
	keys, err := listKeys(ctx, s.regs, "reg."+eid+".*")
	if err != nil {
		return Event{}, nil, err
	}
	var out []Contact
	for _, k := range keys {
		r, _, err := getJSON[Registration](ctx, s.regs, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Event{}, nil, err
		}
		if !Exportable(r) {
			continue
		}
		t, _ := e.Ticket(r.TicketTypeID)
		first, last := splitName(r.Name)
		out = append(out, Contact{
			RegistrationID: r.ID, Name: r.Name, FirstName: first, LastName: last, Email: r.Email,
			Ticket: t.Name, Status: r.Status, Registered: r.Confirmed, ConsentVersion: r.Consent.Version,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RegistrationID < out[j].RegistrationID })
	return e, out, nil
}

// Exportable reports whether registration r may leave jetfleet in an
// export: confirmed or paid, data sharing agreed, not pseudonymised.
func Exportable(r Registration) bool {
	return (r.Status == Confirmed || r.Status == Paid) && r.Consent.DataSharing && !r.Pseudonymised && r.Email != ""
}

func splitName(name string) (first, last string) {
	name = strings.TrimSpace(name)
	i := strings.LastIndexByte(name, ' ')
	if i < 0 {
		return "", name // a CRM's last name is the one it requires
	}
	return strings.TrimSpace(name[:i]), name[i+1:]
}

// CSVHeader is the header row of the participants CSV.
var CSVHeader = []string{"name", "email", "ticket", "status", "registered_at", "consent_version"}

// WriteContactsCSV writes contacts as UTF-8 CSV with a header row. Every
// cell a spreadsheet could take for a formula is neutralised (NeutraliseCell).
func WriteContactsCSV(w io.Writer, contacts []Contact) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("write CSV header: %w", err)
	}
	for _, c := range contacts {
		reg := ""
		if !c.Registered.IsZero() {
			reg = c.Registered.UTC().Format(time.RFC3339)
		}
		row := []string{c.Name, c.Email, c.Ticket, string(c.Status), reg, c.ConsentVersion}
		for i := range row {
			row[i] = NeutraliseCell(row[i])
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write CSV row: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write CSV: %w", err)
	}
	return nil
}

// NeutraliseCell defuses CSV injection as OWASP describes it: a cell that
// starts with = + - @, a tab or a carriage return is prefixed with a single
// quote, so spreadsheets show it as text instead of running it. Quoting of
// commas, quotes and line breaks is the CSV writer's job.
func NeutraliseCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
