"""The records tally writes on its logs, as models: billing commands (tally_core/billing/commands.py), the
event envelope that catalog and billing events share, usage observations, meter events; and the JSON Schemas
in schemas/, generated from them (`schemas.generate`)."""
