"""Live metrics: the instance ``hystrix.stream`` (ASGI, WSGI, background server), Prometheus ``/metrics``,
and a Turbine-style aggregator with discovery (``quills monitor``)."""

from __future__ import annotations

from quills.monitor.aggregator import BadDocument, ClusterAggregator, exact_percentiles
from quills.monitor.asgi import HystrixStreamApp, hystrix_stream_app
from quills.monitor.discovery import (
    DiscoveryError,
    DnsSrvDiscovery,
    FileDiscovery,
    HostsChanged,
    Instance,
    InstanceDiscovery,
    StaticDiscovery,
)
from quills.monitor.hystrix_format import (
    COLLAPSER_KEYS,
    COMMAND_KEYS,
    EXTENSION_KEYS,
    THREAD_POOL_KEYS,
    collapser_document,
    command_document,
    thread_pool_document,
)
from quills.monitor.prometheus import QuillsCollector, prometheus_app, prometheus_wsgi
from quills.monitor.server import MonitorServer, serve
from quills.monitor.stream import StreamOptions
from quills.monitor.tick import tick_documents
from quills.monitor.turbine_server import TurbineMonitor
from quills.monitor.wsgi import HystrixStreamWsgi, hystrix_stream_wsgi

__all__ = (
    # instance stream
    "hystrix_stream_app",
    "hystrix_stream_wsgi",
    "serve",
    "StreamOptions",
    "HystrixStreamApp",
    "HystrixStreamWsgi",
    "MonitorServer",
    # documents
    "COMMAND_KEYS",
    "THREAD_POOL_KEYS",
    "COLLAPSER_KEYS",
    "EXTENSION_KEYS",
    "command_document",
    "thread_pool_document",
    "collapser_document",
    "tick_documents",
    # prometheus
    "QuillsCollector",
    "prometheus_app",
    "prometheus_wsgi",
    # aggregator
    "TurbineMonitor",
    "ClusterAggregator",
    "BadDocument",
    "exact_percentiles",
    # discovery
    "Instance",
    "InstanceDiscovery",
    "DiscoveryError",
    "StaticDiscovery",
    "FileDiscovery",
    "DnsSrvDiscovery",
    "HostsChanged",
)
