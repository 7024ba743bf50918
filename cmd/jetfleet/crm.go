package main

import (
	"log/slog"
	"strings"

	"jetfleet/internal/crm/hubspot"
	"jetfleet/internal/crm/hubspot/hubspottest"
	"jetfleet/internal/crm/salesforce"
	"jetfleet/internal/crm/salesforce/salesforcetest"
	"jetfleet/workers/eventsexport"
)

// openCRMStandIns starts, for `jetfleet dev`, the local HubSpot and
// Salesforce stand-ins in-process for every CRM not configured, and points
// cfg at them, so exports work on a laptop; close stops them. The edge and
// the events-export role then read the same cfg.
func openCRMStandIns(cfg *config, log *slog.Logger) (close func(), err error) {
	var closers []func()
	close = func() {
		for _, c := range closers {
			c()
		}
	}
	if cfg.HubSpotAPIBase == "" {
		hs, err := hubspottest.Start(hubspottest.Config{})
		if err != nil {
			return close, err
		}
		closers = append(closers, func() { hs.Close() })
		cfg.HubSpotAPIBase = hs.URL
		log.Info("no HUBSPOT_API_BASE: local HubSpot stand-in running; its page shows the token to paste and the contacts exported", "url", hs.URL, "token", hs.Token())
	}
	if cfg.SalesforceClientID == "" {
		sf, err := salesforcetest.Start(salesforcetest.Config{ExternalIDField: cfg.SalesforceExternalIDField})
		if err != nil {
			close()
			return func() {}, err
		}
		closers = append(closers, func() { sf.Close() })
		cfg.SalesforceLoginURL, cfg.SalesforceClientID, cfg.SalesforceClientSecret = sf.URL, sf.ClientID(), sf.ClientSecret()
		log.Info("no SALESFORCE_CLIENT_ID: local Salesforce stand-in running", "url", sf.URL)
	}
	return close, nil
}

// salesforceConfig is the Salesforce client's configuration.
func salesforceConfig(cfg *config) salesforce.Config {
	return salesforce.Config{
		LoginURL: cfg.SalesforceLoginURL, ClientID: cfg.SalesforceClientID, ClientSecret: cfg.SalesforceClientSecret,
		RedirectURL:     strings.TrimRight(cfg.BaseURL, "/") + "/events/integrations/salesforce/callback",
		ExternalIDField: cfg.SalesforceExternalIDField,
	}
}

// exportsConfig is the events-export role's configuration.
func exportsConfig(cfg *config) eventsexport.Config {
	return eventsexport.Config{
		BaseURL: cfg.BaseURL, HubSpot: hubspot.Config{BaseURL: cfg.HubSpotAPIBase}, Salesforce: salesforceConfig(cfg),
	}
}

// validFieldName reports whether s can be a Salesforce field API name.
func validFieldName(s string) bool {
	if s == "" || len(s) > 80 {
		return false
	}
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
