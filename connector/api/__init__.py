"""The Braintrust REST API: the client, its paging and its retries."""

from connector.api.lazy_httpx_cli import defer_httpx_cli

defer_httpx_cli()
