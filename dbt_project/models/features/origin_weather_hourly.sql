{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['origin', 'obs_ts'],
        partition_by=['obs_date'],
        incremental_predicates=interval_predicates('obs_date'),
    )
}}

-- The latest hourly weather at each NYC airport, with precipitation over the 3 hours ending at obs_ts
-- (observations in (obs_ts - 3h, obs_ts]). An incremental run reads one extra day before the interval
-- so the 3-hour sums at the start of the interval see the previous evening's observations.

with weather as (

    select * from {{ ref('stg_nycflights__weather') }}
    {{ interval_filter('obs_date', lookback_days=1) }}

),

with_sums as (

    select
        origin,
        obs_ts,
        obs_date,
        temp,
        wind_speed,
        precip,
        visib,
        cast(sum(precip) over (
            partition by origin
            order by unix_seconds(obs_ts)
            range between 10799 preceding and current row
        ) as double) as precip_sum_3h
    from weather

)

select * from with_sums
{{ interval_filter('obs_date') }}
