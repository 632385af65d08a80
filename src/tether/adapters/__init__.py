"""Adapters: put the guard in front of tools reached in other ways (MCP servers, AgentDojo pipelines)."""
