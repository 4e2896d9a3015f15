{#- A model's table name is dbt's default, or the table of its relation override. -#}
{% macro generate_alias_name(custom_alias_name=none, node=none) -%}
    {%- set override = relation_override(node) -%}
    {%- if override -%}
        {{ override.split('.')[1] | trim }}
    {%- else -%}
        {{ default__generate_alias_name(custom_alias_name, node) }}
    {%- endif -%}
{%- endmacro %}
