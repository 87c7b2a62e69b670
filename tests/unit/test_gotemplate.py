"""nsnet.gotemplate: the Go template subset behind ``inspect --format``."""

import re

import pytest

from nsnet.gotemplate import TemplateError, render

NETWORK = {
    "Name": "front",
    "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.60.0.0/24", "Gateway": "10.60.0.1"}]},
    "Internal": False,
    "Containers": {
        "bbb": {"Name": "web", "IPv4Address": "10.60.0.3/24"},
        "aaa": {"Name": "db", "IPv4Address": "10.60.0.2/24"},
    },
    "Options": {"com.docker.network.bridge.name": "br0", "a": "1"},
    "Labels": {},
    "Nothing": None,
    "Aliases": ["web", "www"],
}


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{.Name}}", "front"),
        ("{{.IPAM.Driver}} {{.Internal}}", "default false"),
        ("{{json .IPAM}}", '{"Driver":"default","Config":[{"Subnet":"10.60.0.0/24",'
         '"Gateway":"10.60.0.1"}]}'),
        ("{{range .Containers}}{{.Name}}={{.IPv4Address}} {{end}}",
         "db=10.60.0.2/24 web=10.60.0.3/24 "),
        ("{{range $id, $c := .Containers}}{{$id}}:{{$c.Name}},{{end}}", "aaa:db,bbb:web,"),
        ("{{range .IPAM.Config}}{{.Subnet}}{{end}}", "10.60.0.0/24"),
        ('{{index .Options "com.docker.network.bridge.name"}}', "br0"),
        ("{{.Options}}", "map[a:1 com.docker.network.bridge.name:br0]"),
        ("{{.Labels}}|{{.Nothing}}|{{.Absent}}", "map[]|<nil>|<no value>"),
        ("{{len .Containers}}", "2"),
        ("{{if .Internal}}internal{{else}}external{{end}}", "external"),
        ("{{range .Labels}}x{{else}}no labels{{end}}", "no labels"),
        ("{{with .IPAM}}{{.Driver}}{{end}}", "default"),
        ("{{.Name | upper}}", "FRONT"),
        ('{{split "a,b" ","}}', "[a b]"),
        ('{{join .Aliases ", "}}', "web, www"),
        ('{{printf "%s has %d" .Name 2}}', "front has 2"),
        ("a  {{- .Name -}}  b", "afrontb"),
        ("{{/* a comment */}}x", "x"),
    ],
)  # fmt: skip
def test_templates_render_as_docker_prints_them(template: str, expected: str) -> None:
    assert render(template, NETWORK) == expected


@pytest.mark.parametrize(
    "template, message",
    [
        ("{{.Name", "unclosed action"),
        ("{{nosuch .Name}}", 'function "nosuch" not defined'),
        ("{{range .Containers}}x", "no matching"),
        ("{{end}}", "unexpected"),
        ("{{$x.Name}}", 'undefined variable "$x"'),
        ("{{.Name.Deeper}}", "can't evaluate field Deeper"),
        ('{{template "x"}}', "not supported"),
    ],
)
def test_what_cannot_be_run_is_refused_saying_why(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        render(template, NETWORK)
