"""Sessions and events: what kubegate records of every request, chained so edits show."""
