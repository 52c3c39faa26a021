#!/usr/bin/env python3
"""The template's CloudFront routing against the one list of browser paths.

infra/browser-paths.json names every path a browser requests and the component that serves it
(web, api, relay); relay/sushi/tests/browser_paths.rs checks the same list against the local
`sushi` binary. Here the template (loaded with cfn-lint's CloudFormation YAML loader, tags and
all) must route each path, by CloudFront's own rules (behaviours in order, first match wins,
`*` matches any characters including `/`, the default behaviour last), to the origin of that
component, and that component must take it (API Gateway's routes, the load balancer's listener
rule); dynamic paths must forward the cookie, `Origin`, `Sec-Fetch-Site`, the WebSocket
headers and the query string, uncached, over TLS. Removing any behaviour must break a listed
path (checked by deleting each in turn), so the list and the template cannot drift apart.

usage: python infra/test_cloudfront.py   (run by infra/check.sh, step `template`)
"""

from __future__ import annotations

import copy
import json
import re
import sys
import unittest
from pathlib import Path

from cfnlint.decode import cfn_yaml

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "infra" / "template.yaml"
PATHS = REPO / "infra" / "browser-paths.json"
WEB_RS = REPO / "relay" / "src" / "web.rs"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
EXAMPLE_ASSET = "/assets/app-EXAMPLE1.js"
# What the services decide on, besides the cookie and the query string.
DYNAMIC_HEADERS = ["origin", "sec-fetch-site", "authorization", "content-type",
                   "sec-websocket-key", "sec-websocket-version", "upgrade"]


def load_template() -> dict:
    return json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))  # plain dicts, no node types


def browser_paths() -> list[dict]:
    return json.loads(PATHS.read_text(encoding="utf-8"))["paths"]


def example(entry: dict) -> str:
    path = entry["example"].replace("{asset}", EXAMPLE_ASSET)
    return path.split("?", 1)[0]  # path patterns never see the query string


def glob_matches(pattern: str, path: str) -> bool:
    """CloudFront and ALB path patterns: `*` any characters (also `/`), `?` exactly one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, path) is not None


def resources(template: dict) -> dict:
    return template["Resources"]


def ref_name(value) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def origin_component(origin: dict) -> str | None:
    """Which component an origin is, from what it points at."""
    domain = origin.get("DomainName")
    if "S3OriginConfig" in origin and origin.get("OriginAccessControlId") and \
            domain == {"Fn::GetAtt": ["WebBucket", "RegionalDomainName"]}:
        return "web"
    if isinstance(domain, dict) and "${HttpApi}.execute-api." in str(domain.get("Fn::Sub", "")):
        return "api"
    if ref_name(domain) == "RelayDomainName":
        return "relay"
    return None


def route(config: dict, path: str) -> dict:
    """The behaviour CloudFront picks for `path`: the first matching one, else the default."""
    for behaviour in config.get("CacheBehaviors", []):
        if glob_matches(behaviour["PathPattern"], path):
            return behaviour
    return config["DefaultCacheBehavior"]


def forwards(policy: dict, header: str) -> bool:
    headers = policy["HeadersConfig"]
    listed = [h.lower() for h in headers.get("Headers", [])]
    behaviour = headers["HeaderBehavior"]
    return behaviour in ("allViewer", "allViewerAndWhitelistCloudFront") or \
        (behaviour == "allExcept" and header not in listed) or \
        (behaviour == "whitelist" and header in listed)


def routing_failures(template: dict) -> list[str]:
    """Every way a listed browser path is not served as the list says (empty when all are)."""
    res = resources(template)
    config = res["Distribution"]["Properties"]["DistributionConfig"]
    origins = {o["Id"]: o for o in config["Origins"]}
    failures = []
    for entry in browser_paths():
        path, method, want = example(entry), entry["method"], entry["component"]
        behaviour = route(config, path)
        origin = origins.get(behaviour["TargetOriginId"], {})
        got = origin_component(origin)
        where = f"{method} {entry['example']} ({want})"
        if got != want:
            failures.append(f"{where}: routed to {behaviour.get('PathPattern', 'default')} -> {got}")
            continue
        if method not in behaviour["AllowedMethods"]:
            failures.append(f"{where}: {method} not allowed by {behaviour.get('PathPattern')}")
        if behaviour.get("ViewerProtocolPolicy") not in ("https-only", "redirect-to-https"):
            failures.append(f"{where}: plain HTTP allowed")
        if not behaviour.get("ResponseHeadersPolicyId"):
            failures.append(f"{where}: no security headers policy")
        failures += (dynamic_failures if want != "web" else web_failures)(res, behaviour, origin, where)
        failures += component_failures(res, want, method, path, where)
    return failures


def dynamic_failures(res: dict, behaviour: dict, origin: dict, where: str) -> list[str]:
    failures = []
    if behaviour.get("CachePolicyId") != CACHING_DISABLED:
        failures.append(f"{where}: cached (cache policy is not CachingDisabled)")
    policy_name = ref_name(behaviour.get("OriginRequestPolicyId"))
    policy = res.get(policy_name, {}).get("Properties", {}).get("OriginRequestPolicyConfig")
    if not policy:
        return failures + [f"{where}: no origin request policy of this template"]
    cookies = policy["CookiesConfig"]
    if not (cookies["CookieBehavior"] == "all" or
            (cookies["CookieBehavior"] == "whitelist" and "jwt" in cookies.get("Cookies", []))):
        failures.append(f"{where}: the jwt cookie is not forwarded")
    failures += [f"{where}: {h} not forwarded" for h in DYNAMIC_HEADERS if not forwards(policy, h)]
    if forwards(policy, "host"):
        failures.append(f"{where}: Host forwarded (the origin would see the public name)")
    if policy["QueryStringsConfig"]["QueryStringBehavior"] != "all":
        failures.append(f"{where}: the query string is not forwarded")
    custom = origin.get("CustomOriginConfig", {})
    if custom.get("OriginProtocolPolicy") != "https-only" or custom.get("OriginSSLProtocols") != ["TLSv1.2"]:
        failures.append(f"{where}: origin not reached over TLS 1.2")
    return failures


def web_failures(res: dict, behaviour: dict, origin: dict, where: str) -> list[str]:
    policy = res.get(ref_name(behaviour.get("CachePolicyId")), {}).get("Properties", {}) \
        .get("CachePolicyConfig", {})
    # MinTTL 0: index.html's no-cache is honoured; MaxTTL a year: hashed assets stay cached.
    if policy.get("MinTTL") != 0 or policy.get("MaxTTL", 0) < 31536000:
        return [f"{where}: web cache policy does not follow the objects' Cache-Control"]
    return []


def component_failures(res: dict, component: str, method: str, path: str, where: str) -> list[str]:
    """The component behind the origin takes the request (its own routing)."""
    if component == "api":
        keys = [r["Properties"]["RouteKey"] for r in res.values()
                if r["Type"] == "AWS::ApiGatewayV2::Route"]
        for key in keys:
            verb, pattern = key.split(" ", 1)
            regex = re.sub(r"\\\{[^}]+\\\+\\\}", ".+", re.sub(r"\\\{[^}+]+\\\}", "[^/]+", re.escape(pattern)))
            if verb in ("ANY", method) and re.fullmatch(regex, path):
                return []
        return [f"{where}: no API Gateway route takes it ({keys})"]
    if component == "relay":
        rules = [r["Properties"] for r in res.values() if r["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule"]
        for rule in rules:
            conditions = {c["Field"]: c for c in rule["Conditions"]}
            patterns = conditions.get("path-pattern", {}).get("PathPatternConfig", {}).get("Values", [])
            if any(glob_matches(p, path) for p in patterns) and rule["Actions"][0]["Type"] == "forward":
                return []
        return [f"{where}: the relay load balancer forwards no rule for it"]
    return []


class CloudFrontRouting(unittest.TestCase):
    def setUp(self) -> None:
        self.template = load_template()
        self.res = resources(self.template)
        self.config = self.res["Distribution"]["Properties"]["DistributionConfig"]

    def test_every_browser_path_reaches_the_component_that_serves_it(self) -> None:
        self.assertEqual(routing_failures(self.template), [])

    def test_removing_any_behaviour_breaks_a_listed_path(self) -> None:
        for i, behaviour in enumerate(self.config["CacheBehaviors"]):
            mutated = copy.deepcopy(self.template)
            del resources(mutated)["Distribution"]["Properties"]["DistributionConfig"]["CacheBehaviors"][i]
            with self.subTest(removed=behaviour["PathPattern"]):
                self.assertNotEqual(routing_failures(mutated), [])

    def test_the_list_covers_every_component_and_the_required_paths(self) -> None:
        listed = {(e["pattern"], e["component"]) for e in browser_paths()}
        for required in [("/", "web"), ("/assets/*", "web"), ("/api/v1/*", "api"),
                         ("/api/v1/auth/*", "api"), ("/api/v1/machine/*/connect", "relay"),
                         ("/api/v1/machine/*/host-key", "relay"), ("/api/v1/share*", "relay"),
                         ("/ssh", "relay")]:
            self.assertIn(required, listed)

    def test_the_root_serves_the_page(self) -> None:
        self.assertEqual(self.config["DefaultRootObject"], "index.html")

    def test_the_csp_is_the_local_binarys(self) -> None:
        source = WEB_RS.read_text(encoding="utf-8")
        literal = re.search(r'CONTENT_SECURITY_POLICY: &str = "((?:[^"\\]|\\.)*)";', source, re.S)
        self.assertIsNotNone(literal, "CONTENT_SECURITY_POLICY not found in relay/src/web.rs")
        local = re.sub(r"\\\n\s*", "", literal.group(1))
        policy = self.res["SecurityHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]
        headers = policy["SecurityHeadersConfig"]
        self.assertEqual(headers["ContentSecurityPolicy"]["ContentSecurityPolicy"], local)
        self.assertEqual(headers["FrameOptions"]["FrameOption"], "DENY")
        self.assertEqual(headers["ReferrerPolicy"]["ReferrerPolicy"], "no-referrer")

    def test_the_relay_load_balancer_takes_cloudfront_with_the_secret_only(self) -> None:
        ingress = self.res["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"]
        self.assertEqual([ref_name(r.get("SourcePrefixListId")) for r in ingress], ["CloudFrontPrefixListId"])
        self.assertFalse([r for r in ingress if "CidrIp" in r or "CidrIpv6" in r])
        extra = [r for r in self.res.values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"
                 and ref_name(r["Properties"].get("GroupId")) == "LoadBalancerSecurityGroup"]
        self.assertEqual(extra, [], "another way into the load balancer")
        origin = next(o for o in self.config["Origins"] if origin_component(o) == "relay")
        sent = {h["HeaderName"]: h["HeaderValue"] for h in origin["OriginCustomHeaders"]}
        rules = [r["Properties"] for r in self.res.values() if r["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule"]
        self.assertTrue(rules)
        for rule in rules:
            header = next(c["HttpHeaderConfig"] for c in rule["Conditions"] if c["Field"] == "http-header")
            self.assertEqual(header["Values"], [sent[header["HttpHeaderName"]]])
            self.assertIn("${OriginSecret}", header["Values"][0]["Fn::Sub"])
        listener = self.res["RelayHttpsListener"]["Properties"]
        self.assertEqual(listener["DefaultActions"][0]["Type"], "fixed-response")

    def test_the_services_know_the_public_origin(self) -> None:
        api_env = self.res["ApiFn"]["Properties"]["Environment"]["Variables"]
        self.assertIn("Distribution.DomainName", json.dumps(api_env["PUBLIC_URL"]))
        container = self.res["RelayTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
        env = {e["Name"]: e["Value"] for e in container["Environment"]}
        for name in ("PUBLIC_URL", "ALLOWED_ORIGINS"):
            self.assertIn("Distribution.DomainName", json.dumps(env[name]), name)

    def test_the_web_bucket_is_private_and_read_by_this_distribution_only(self) -> None:
        block = self.res["WebBucket"]["Properties"]["PublicAccessBlockConfiguration"]
        self.assertTrue(all(block.values()))
        statement = self.res["WebBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
        self.assertEqual(statement["Principal"], {"Service": "cloudfront.amazonaws.com"})
        self.assertIn("distribution/${Distribution}",
                      statement["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"])


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
