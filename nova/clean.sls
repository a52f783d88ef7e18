{#- `state.apply nova.clean`: remove what `state.apply nova` made on this
    minion, in reverse order: services, firewall rules, sysctl and qemu.conf
    lines, policy.yaml, packages, config files; host aggregates (first, while
    the Compute API runs), databases, DB users and Keystone records only with
    nova:clean:data: true. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}

include:
  - {{ tplroot }}.validate
{%- for concern in nova.plan.clean %}
  - {{ tplroot }}.{{ concern }}.clean
{%- endfor %}
