"""Every exchange with a Pagoflex host, checked against host/http/openapi.yaml.

harness.http() (and the tests that talk HTTP by other means, through
harness.check_exchange) hand each request and its answer here. The document
is the contract, so:

- a path no `paths` entry matches must be answered 404 with the Error body,
  a method the path does not take 405 with the Error body and an Allow
  header naming exactly the documented methods;
- the answer's status must be one the operation documents, with its
  required headers, a documented content type and a body that validates
  against the schema (objects are additionalProperties: false, so a field
  the document lacks fails);
- a request the document refuses (unknown body member or query parameter,
  wrong type, out of range) may be sent on purpose, but must not be
  answered 2xx: the server would be taking what the contract refuses.

Schemas are validated with python3-jsonschema (Draft 2020-12, the dialect
of OpenAPI 3.1); the document is read with python3-yaml.
"""
import json
import os
import re
import threading
import urllib.parse

import jsonschema
import yaml

DOC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "host", "http", "openapi.yaml")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class Violation(AssertionError):
    """An exchange the document does not allow."""


def _pointer(*parts):
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class Contract:
    def __init__(self, path=DOC_PATH):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        self.paths = []
        for template in self.doc["paths"]:
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            literal = "{" not in template
            self.paths.append((not literal, template, re.compile(rx)))
        self.paths.sort()  # literal paths before templates
        self._validators = {}
        self._lock = threading.Lock()

    # ---- schema plumbing ------------------------------------------------
    def _resolve(self, node):
        while isinstance(node, dict) and "$ref" in node and len(node) == 1 and node["$ref"].startswith("#/"):
            parts = node["$ref"][2:].split("/")
            node = self.doc
            for part in parts:
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def validator(self, pointer):
        """A Draft 2020-12 validator for the schema at `pointer`, resolving
        the document's own '#/components/...' references."""
        with self._lock:
            v = self._validators.get(pointer)
            if v is None:
                root = dict(self.doc)
                root["$ref"] = pointer
                root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
                v = jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())
                self._validators[pointer] = v
            return v

    def errors(self, pointer, instance):
        return ["%s at %s" % (e.message, "/".join(str(p) for p in e.absolute_path) or "(root)")
                for e in self.validator(pointer).iter_errors(instance)]

    def _ptr_of(self, base, node_path):
        """JSON pointer to a schema under `base` (a list of path parts),
        following a one-step $ref of the containing object."""
        return _pointer(*(base + node_path))

    def _ref_base(self, base):
        """`base` (parts) after following its $ref, if the object there is one."""
        node = self.doc
        for p in base:
            node = node[p]
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 10:
            base = [p.replace("~1", "/").replace("~0", "~") for p in node["$ref"][2:].split("/")]
            node = self.doc
            for p in base:
                node = node[p]
            seen += 1
        return base, node

    # ---- matching ---------------------------------------------------------
    def match(self, path):
        for _, template, rx in self.paths:
            if rx.match(path):
                return template
        return None

    # ---- the check --------------------------------------------------------
    def check(self, method, url, body, headers, status, raw, resp_headers):
        """Raise Violation when the exchange breaks the document."""
        parts = urllib.parse.urlsplit(url)
        path, query = parts.path or "/", urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        rh = {k.lower(): v for k, v in (resp_headers or {}).items()}
        qh = {k.lower(): v for k, v in (headers or {}).items()}
        what = "%s %s -> %s" % (method, path, status)
        problems = []
        template = self.match(path)
        if template is None:
            problems += self._error_answer(status, raw, rh, (404,))
            if problems:
                raise Violation("%s: undocumented route answered other than a 404 error: %s" % (what, problems))
            return
        item = self.doc["paths"][template]
        op = item.get(method.lower())
        if op is None:
            allowed = sorted(m.upper() for m in METHODS if m in item)
            problems += self._error_answer(status, raw, rh, (405,))
            got = sorted(m.strip() for m in rh.get("allow", "").split(",") if m.strip())
            if got != allowed:
                problems.append("Allow is %r, the document has %r" % (rh.get("allow"), allowed))
            if problems:
                raise Violation("%s: a method %s does not document: %s" % (what, template, problems))
            return
        op_base = ["paths", template, method.lower()]
        request_problems = self._request(op_base, item, op, template, path, query, qh, body)
        if request_problems and 200 <= status < 300:
            raise Violation("%s: the server took a request the document refuses: %s" % (what, request_problems))
        responses = op.get("responses", {})
        key = str(status) if str(status) in responses else ("%dXX" % (status // 100)) \
            if ("%dXX" % (status // 100)) in responses else "default" if "default" in responses else None
        if key is None:
            raise Violation("%s: status %d is not documented for %s %s (documented: %s); body %r" %
                            (what, status, method, template, sorted(responses), (raw or b"")[:300]))
        base, resp = self._ref_base(op_base + ["responses", key])
        problems += self._response(base, resp, status, raw, rh)
        if problems:
            raise Violation("%s: %s" % (what, problems))

    def _error_answer(self, status, raw, rh, statuses):
        problems = []
        if status not in statuses:
            problems.append("status %d, wanted %s" % (status, statuses))
        problems += self._json_body("#/components/schemas/Error", raw, rh)
        if status == 405:
            pass  # Allow is checked by the caller, against the path's methods
        return problems

    def _json_body(self, pointer, raw, rh):
        ctype = rh.get("content-type", "")
        if not ctype.startswith("application/json"):
            return ["content type %r, wanted application/json" % ctype]
        try:
            doc = json.loads(raw)
        except ValueError as e:
            return ["body is not JSON: %s" % e]
        return self.errors(pointer, doc)

    def _response(self, base, resp, status, raw, rh):
        problems = []
        for name, h in (resp.get("headers") or {}).items():
            hbase, hdef = self._ref_base(base + ["headers", name])
            value = rh.get(name.lower())
            if value is None:
                if hdef.get("required"):
                    problems.append("required header %s is missing" % name)
                continue
            if "schema" in hdef:
                problems += ["header %s: %s" % (name, e) for e in self.errors(_pointer(*(hbase + ["schema"])), value)]
        content = resp.get("content")
        if not content:
            if raw:
                problems.append("a body where the document has none")
            return problems
        ctype = rh.get("content-type", "").split(";")[0].strip()
        if ctype in content:
            media = ctype
        elif "*/*" in content:
            return problems
        else:
            return problems + ["content type %r is not documented (%s)" % (ctype, sorted(content))]
        if media == "application/json":
            problems += self._json_body(_pointer(*(base + ["content", media, "schema"])), raw, rh)
        return problems

    def _params(self, item, op):
        params = {}
        for group, base in ((item.get("parameters") or [], "item"), (op.get("parameters") or [], "op")):
            for p in group:
                p = self._resolve(p)
                params[(p["in"], p["name"] if p["in"] != "header" else p["name"].lower())] = p
        return params

    def _request(self, op_base, item, op, template, path, query, qh, body):
        problems = []
        params = self._params(item, op)
        for name, value in query:
            p = params.get(("query", name))
            if p is None and op.get("x-query-parameters") == "connector":
                continue  # a bank's own parameters, read by its connector
            if p is None:
                problems.append("query parameter %r is not documented" % name)
                continue
            problems += ["query %s: %s" % (name, e) for e in self._param_errors(p, value)]
        for (where, name), p in params.items():
            if where == "header" and name in qh:
                problems += ["header %s: %s" % (name, e) for e in self._param_errors(p, qh[name])]
        rb = self._resolve(op.get("requestBody"))
        data = body if isinstance(body, (bytes, str, type(None))) else json.dumps(body).encode()
        if data:
            if not rb:
                problems.append("a body where the document takes none")
            else:
                ctype = qh.get("content-type", "").split(";")[0].strip()
                content = rb.get("content", {})
                if ctype in content or "*/*" in content:
                    if ctype == "application/json" and ctype in content:
                        try:
                            doc = json.loads(data)
                        except ValueError as e:
                            problems.append("body is not JSON: %s" % e)
                        else:
                            ptr = self._schema_pointer(op_base, rb, ctype)
                            problems += self.errors(ptr, doc)
                else:
                    problems.append("request content type %r is not documented" % ctype)
        elif rb and rb.get("required"):
            problems.append("the document requires a body")
        return problems

    def _schema_pointer(self, op_base, rb, ctype):
        base, _ = self._ref_base(op_base + ["requestBody"])
        return _pointer(*(base + ["content", ctype, "schema"]))

    def _param_errors(self, p, value):
        schema = self._resolve(p.get("schema", {}))
        v = value
        if schema.get("type") == "integer":
            try:
                v = int(value)
            except ValueError:
                return ["%r is not an integer" % value]
        # A parameter's schema is small and self-contained, or a reference.
        ref = p.get("schema", {})
        if "$ref" in ref:
            return self.errors(ref["$ref"], v)
        return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(v)]


_CONTRACT = None
_CONTRACT_LOCK = threading.Lock()


def contract():
    global _CONTRACT
    with _CONTRACT_LOCK:
        if _CONTRACT is None:
            _CONTRACT = Contract()
        return _CONTRACT
