{#- Runs first (order 1) in every nova SLS: an invalid pillar (or a host the
    formula cannot act on) stops the whole run (failhard) before anything
    changes, with one message per problem. Otherwise it says what runs and
    what nova:manage left out. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import nova, args with context %}

nova-pillar-valid:
{%- if nova.plan.errors %}
  test.fail_without_changes:
{%- else %}
  test.succeed_without_changes:
{%- endif %}
    - name: nova pillar
    - comment: {{ nova.plan.comment|json }}
    - order: 1
    - failhard: True
