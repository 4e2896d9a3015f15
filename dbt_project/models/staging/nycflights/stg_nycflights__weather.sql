{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['origin', 'obs_ts'],
        partition_by=['obs_date'],
    )
}}

with source as (

    select * from {{ source('nycflights', 'weather') }}
    {{ interval_filter('obs_date') }}

),

renamed as (

    select
        origin,
        obs_ts,
        obs_date,
        temp,
        dewp as dewpoint,
        humid as humidity,
        wind_dir,
        wind_speed,
        wind_gust,
        precip,
        pressure,
        visib
    from source

)

select * from renamed
