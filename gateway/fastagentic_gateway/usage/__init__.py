"""Token and cost accounting: what workers report in ``llm_end`` events, validated, priced and added up.

``model`` holds the data (``Totals``, ``UsageReport``, ``UsageQuery``, ``UsageRow``), ``accounting`` the
validation, the price table and ``UsageAccounting``, the service the gateway and the limiter use.
"""
