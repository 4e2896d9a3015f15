with source as (

    select * from {{ source('nycflights', 'airports') }}

),

renamed as (

    select
        faa as airport,
        name as airport_name,
        lat as latitude,
        lon as longitude,
        alt as altitude_ft,
        tzone as time_zone
    from source

)

select * from renamed
