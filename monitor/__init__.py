"""monitor: a news-monitoring alert daemon."""

__version__ = "0.1.0"
USER_AGENT = f"monitor/{__version__} (+https://github.com/monitor-news/monitor)"
