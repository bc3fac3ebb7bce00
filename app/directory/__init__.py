"""Directory (LDAP / Active Directory) login: settings, the LDAP client and account creation."""
