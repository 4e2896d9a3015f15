{#- A model's schema (a Spark database) is its configured +schema verbatim: `staging`, `features`,
    not dbt's default `<target_schema>_<custom>` concatenation. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
