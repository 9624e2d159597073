"""Event data: readers and writers, windowing, rendering. Imports only numpy and opencv."""
