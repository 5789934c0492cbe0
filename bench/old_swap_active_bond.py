#!/usr/bin/env python3
"""A faithful model of the old ``swap-active-bond.py`` notify script, the benchmark's baseline.

What it keeps from the original, because that is what the benchmark measures:

- the same ``swap-active-bond.conf`` and the same four keepalived arguments
  (``TYPE NAME STATE PRIORITY``; it acts on MASTER only, priority 10 = master bonder);
- one blind ``PATCH {"enabled": ...}`` per configured object, one after another, each on a
  new connection (the original called ``requests.patch`` without a session);
- every object on the peer bond is disabled before anything on its own bond is enabled, so
  each address is dark from its disable until the very end of the run, in the order of the
  upstream commit "Enable routes after connected IPs": the peer's CPE NAT IPs, routes, then
  connected IPs off; the own bond's connected IPs, CPE NAT IPs, then routes on (so no route
  is ever enabled without the connected IP that holds its gateway);
- nothing is read, nothing is verified, and the exit code is 0 whatever happened;
- retries as the original: ``attempts`` tries with ``attempt_delay`` between them, none
  for a 4xx; one log line per attempt, to syslog when stdout is not a terminal.

It differs where that only makes it *faster* than the original (so bondha's ratios are
conservative): the standard library's ``http.client`` instead of ``requests`` (whose import
alone costs about as much as httpx's), and all three kinds (the original knew connected IPs
and routes). ``host`` may carry a scheme and port (the stand-in's ``http://127.0.0.1:PORT``);
a bare domain means https, as in the original.

Usage: old_swap_active_bond.py [--config PATH] TYPE NAME STATE PRIORITY
"""

import argparse
import base64
import configparser
import http.client
import json
import ssl
import sys
import syslog
import time
from urllib.parse import urlsplit

CONF_FILE = "/etc/bonding/swap-active-bond.conf"
CONNECTED_IPS = ("connected_ips", "connected_ip")
ROUTES = ("routes", "route")
CPE_NAT_IPS = ("cpe_nat_ips", "cpe_nat_ip")
# Upstream's order since "Enable routes after connected IPs".
DISABLE_ORDER = (CPE_NAT_IPS, ROUTES, CONNECTED_IPS)
ENABLE_ORDER = (CONNECTED_IPS, CPE_NAT_IPS, ROUTES)
MASTER_PRIO = "10"


def log(message):
    if sys.stdout.isatty():
        sys.stdout.write(message + "\n")
    else:
        syslog.syslog(message)


def id_list(config, option):
    text = config.get("bond", option, fallback="")
    return [part.strip() for part in text.split(",") if part.strip()]


def patch(base, path, enabled, auth, verify_ssl, timeout):
    """One PATCH on a connection of its own; returns the status code."""
    parts = urlsplit(base)
    if parts.scheme == "https":
        context = ssl.create_default_context()
        if not verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    body = json.dumps({"enabled": enabled})
    headers = {"Authorization": auth, "Content-Type": "application/json",
               "Accept": "application/json"}
    try:
        connection.request("PATCH", parts.path.rstrip("/") + path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def update(base, bond_id, kind, object_id, enabled, auth, settings):
    verify_ssl, timeout, attempts, attempt_delay = settings
    path = f"/api/v3/bonds/{bond_id}/{kind}/{object_id}/"
    for attempt in range(attempts):
        log(f"Updating bond {bond_id} routing object {object_id} enabled to {enabled} "
            f"(attempt {attempt + 1} of {attempts}).")
        try:
            status = patch(base, path, enabled, auth, verify_ssl, timeout)
        except (OSError, http.client.HTTPException) as exc:
            log(f"Request to {base} failed: {exc}")
        else:
            if status < 400:
                log(f"Updated bond {bond_id} routing object {object_id}.")
                return
            log(f"Request failed: HTTP {status}")
            if status < 500:
                return  # a client error: no use retrying
        if attempt < attempts - 1:
            time.sleep(attempt_delay)


def main():
    syslog.openlog(ident="swap-active-bond")
    parser = argparse.ArgumentParser(description="Swap active bond (model of the old script).")
    parser.add_argument("--config", default=CONF_FILE)
    parser.add_argument("instance")
    parser.add_argument("instance_id")
    parser.add_argument("state")
    parser.add_argument("priority")
    args = parser.parse_args()
    config = configparser.ConfigParser()
    with open(args.config) as stream:
        config.read_file(stream)
    role, peer = ("master", "backup") if args.priority == MASTER_PRIO else ("backup", "master")
    if args.state != "MASTER":
        return 0
    host = config.get("bondingadmin", "host")
    base = host if "://" in host else f"https://{host}"
    credentials = f"{config.get('bondingadmin', 'user')}:{config.get('bondingadmin', 'passwd')}"
    auth = "Basic " + base64.b64encode(credentials.encode()).decode()
    settings = (
        config.getboolean("bondingadmin", "verify_ssl", fallback=True),
        config.getfloat("bondingadmin", "timeout", fallback=10.0),
        config.getint("bondingadmin", "attempts", fallback=3),
        config.getfloat("bondingadmin", "attempt_delay", fallback=5.0),
    )
    # Everything off on the peer bond, then everything on on ours.
    for side, enabled, kinds in ((peer, False, DISABLE_ORDER), (role, True, ENABLE_ORDER)):
        bond_id = config.get("bond", f"{side}_bond_id")
        for kind, stem in kinds:
            for object_id in id_list(config, f"{side}_{stem}_ids"):
                update(base, bond_id, kind, object_id, enabled, auth, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
