"""Staff notifications, acknowledgement deadlines and escalation (filled by the notifications issue)."""
