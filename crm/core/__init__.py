"""Shared machinery: database base and mixins, scoping, validators, calendar, spreadsheets, audit."""
