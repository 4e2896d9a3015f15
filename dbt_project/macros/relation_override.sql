{#- The relation featurelake has a model built into instead of its own (var `relation_overrides`: model name ->
    `schema.table`), or none. featurelake builds the model of each dbt feature view into the view's audit table
    (`staging.<view>_v<n>__audit`, a shallow clone of the published table, so an incremental model merges the
    interval into the published rows and its data tests run on the result), validates it and only then
    publishes it into `features.<model>` (write-audit-publish). -#}
{% macro relation_override(node) -%}
    {%- if node is not none and node.resource_type == 'model' -%}
        {{ return(var('relation_overrides', {}).get(node.name)) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}
