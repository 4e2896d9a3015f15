{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['origin', 'obs_ts'],
        partition_by=['obs_date'],
        incremental_predicates=interval_predicates('obs_date'),
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
        -- readings no anemometer gives are sensor errors (2013-02-12 EWR: 1048 mph): null, not a feature value
        case when wind_speed between 0 and 200 then wind_speed end as wind_speed,
        case when wind_gust between 0 and 300 then wind_gust end as wind_gust,
        precip,
        pressure,
        visib
    from source

)

select * from renamed
