{#- Runs first (order 1) in every nova SLS: an invalid pillar stops the whole
    run (failhard) before anything changes, with one message per bad key. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova with context %}

nova-pillar-valid:
{%- if nova.plan.errors %}
  test.fail_without_changes:
    - name: nova pillar
    - comment: {{ ("Invalid pillar, nothing was changed:\n" ~ nova.plan.errors|join("\n"))|json }}
{%- else %}
  test.succeed_without_changes:
    - name: nova pillar
    - comment: {{ ("nova pillar is valid (release " ~ nova.release ~ ", dialect " ~ nova.dialect
                   ~ ", roles: " ~ (nova.plan.roles|join(", ") or "none") ~ ")")|json }}
{%- endif %}
    - order: 1
    - failhard: True
