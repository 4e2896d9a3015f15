{#- A model's schema (a Spark database) is its configured +schema verbatim: `staging`, `features`,
    not dbt's default `<target_schema>_<custom>` concatenation; or the schema of its relation override. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set override = relation_override(node) -%}
    {%- if override -%}
        {{ override.split('.')[0] | trim }}
    {%- elif custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
